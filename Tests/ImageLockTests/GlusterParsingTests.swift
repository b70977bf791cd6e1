import ImageLock
import XCTest

/// gluster:// names, lk-owners and statedump text: pure values, no server.
final class GlusterParsingTests: XCTestCase {
    func testURLForms() throws {
        let u = try GlusterURL(parsing: "gluster://gl1/vmstore/images/vm1.qcow2")
        XCTAssertEqual(u, GlusterURL(host: "gl1", port: 24007, volume: "vmstore", path: "/images/vm1.qcow2"))
        XCTAssertEqual(u.description, "gluster://gl1/vmstore/images/vm1.qcow2")
        XCTAssertEqual(u.server, "gl1:24007")

        let p = try GlusterURL(parsing: "gluster+tcp://10.0.0.5:24008/v/a b.img")
        XCTAssertEqual(p, GlusterURL(host: "10.0.0.5", port: 24008, volume: "v", path: "/a b.img"))
        XCTAssertEqual(p.description, "gluster://10.0.0.5:24008/v/a b.img")

        let v6 = try GlusterURL(parsing: "gluster://[fd00::1]:24007/v//dir//x.raw")
        XCTAssertEqual(v6.host, "fd00::1")
        XCTAssertEqual(v6.path, "/dir/x.raw")
        XCTAssertEqual(v6.server, "[fd00::1]:24007")
        XCTAssertEqual(v6.description, "gluster://[fd00::1]/v/dir/x.raw")
        XCTAssertEqual(try GlusterURL(parsing: v6.description), v6, "the canonical spelling parses back")

        XCTAssertTrue(GlusterURL.looksLikeURL("GLUSTER://h/v/f"))
        XCTAssertFalse(GlusterURL.looksLikeURL("/var/lib/libvirt/images/gluster.img"))
        // As a lowercased copy's prefix would say, in every case and at every length.
        for s in ["gluster://", "Gluster+tcp://h/v/f", "gLuStEr+", "gluster:/", "gluster:", "gluster", "glustr://h",
                  "gluster:x/", "gluster//h", "", "g", "GLUSTERFS://h/v", " gluster://h", "gluster\u{0}://",
                  "glu\u{17F}ter://h", "\u{212A}gluster://", "gluster+\u{301}x", "gluster://\u{301}h", "gluster:\u{301}//",
                  "GLUSTER+\u{130}", "\u{130}gluster://"] {
            let lower = s.lowercased()
            XCTAssertEqual(GlusterURL.looksLikeURL(s), lower.hasPrefix("gluster://") || lower.hasPrefix("gluster+"), s)
        }
    }

    func testBadURLsSayWhy() {
        let cases: [(String, String)] = [
            ("gluster://", "missing /VOLUME/PATH"),
            ("gluster://h", "missing /VOLUME/PATH"),
            ("gluster:///v/f", "missing host"),
            ("gluster://h/v", "missing the file's path"),
            ("gluster://h/v/", "missing the file's path"),
            ("gluster://h//f", "missing volume name"),
            ("gluster://h:0/v/f", "port must be"),
            ("gluster://h:99999/v/f", "port must be"),
            ("gluster://h:x/v/f", "port must be"),
            ("gluster://fd00::1/v/f", "IPv6 address in brackets"),
            ("gluster://[fd00::1/v/f", "unclosed ["),
            ("gluster+unix:///v/f?socket=/run/s", "only the tcp transport"),
            ("gluster://h/v/../etc/passwd", "must not contain . or .."),
        ]
        for (text, why) in cases {
            XCTAssertThrowsError(try GlusterURL(parsing: text), text) { error in
                guard case ImageLockError.invalidGlusterURL(let t, let reason) = error else {
                    return XCTFail("\(text): \(error)")
                }
                XCTAssertEqual(t, text)
                XCTAssertTrue(reason.contains(why), "\(text): \(reason)")
                XCTAssertTrue("\(error)".hasPrefix("\(text): not a Gluster image name: "), "\(error)")
            }
        }
    }

    func testOwnerHexAndLocksmithOwner() throws {
        let o = try XCTUnwrap(GlusterLockOwner(statedumpHex: "6d79686f73743a31-323334"))
        XCTAssertEqual(o.text, "myhost:1234")
        XCTAssertEqual(o.locksmithHolder?.host, "myhost")
        XCTAssertEqual(o.locksmithHolder?.pid, 1234)
        XCTAssertEqual(o.hex, "6d79686f73743a31-323334", "the statedump spelling round-trips")

        let mine = GlusterLockOwner.locksmith(host: "node-7.example", pid: 42)
        XCTAssertEqual(GlusterLockOwner(statedumpHex: mine.hex), mine)
        XCTAssertEqual(mine.locksmithHolder?.host, "node-7.example")

        let fuse = try XCTUnwrap(GlusterLockOwner(statedumpHex: "473bc5b3beaae80e"))
        XCTAssertEqual(fuse.bytes.count, 8)
        XCTAssertNil(fuse.text)
        XCTAssertNil(fuse.locksmithHolder)
        XCTAssertEqual(fuse.description, "473bc5b3beaae80e")

        XCTAssertNil(GlusterLockOwner(statedumpHex: "abc"), "odd number of digits")
        XCTAssertNil(GlusterLockOwner(statedumpHex: "zz"))
        XCTAssertNil(GlusterLockOwner(statedumpHex: "6869").flatMap(\.locksmithHolder), "\"hi\" is not host:pid")
    }

    func testRealStatedump() throws {
        let records = GlusterStatedump.locks(in: realStatedump)
        XCTAssertEqual(records.count, 5, "\(records)")

        let space = records.filter { $0.path == "/dir with space.img" }
        XCTAssertEqual(space.map(\.type), [.write, .read])
        XCTAssertEqual(space.map(\.range), [ByteRange(start: 0, length: 10), ByteRange(start: 20, length: 10)])
        XCTAssertEqual(space.map(\.pid), [29685, 29685])

        // A FUSE lock: the connection is the mount daemon's (pid 29377, host vm); pid = the caller.
        let b = records.filter { $0.path == "/b.img" }
        XCTAssertEqual(b.map(\.state), [.active, .blocked])
        let fuse = b[0]
        XCTAssertEqual(fuse.volume, "lsvol")
        XCTAssertEqual(fuse.type, .read)
        XCTAssertEqual(fuse.range, .wholeFile)
        XCTAssertEqual(fuse.pid, 29396)
        XCTAssertEqual(fuse.holderPID, 29396)
        XCTAssertEqual(fuse.clientPID, 29377)
        XCTAssertEqual(fuse.clientHost, "vm")
        XCTAssertEqual(fuse.host, "vm")
        XCTAssertEqual(fuse.clientName, "lsvol-client-0")
        XCTAssertEqual(fuse.owner?.hex, "473bc5b3beaae80e")
        XCTAssertFalse(fuse.isLocksmith)
        XCTAssertEqual(fuse.since, "2026-11-28 03:49:58 +0000")
        XCTAssertEqual(b[1].range, ByteRange(start: 4096, length: 100))
        XCTAssertEqual(b[1].since, "2026-11-28 03:50:08 +0000")

        // A gfapi client with a locksmith-style owner: host and pid from the owner.
        let a = try XCTUnwrap(records.first { $0.path == "/a.img" })
        XCTAssertEqual(a.type, .write)
        XCTAssertEqual(a.clientHost, "apihost")
        XCTAssertEqual(a.clientPID, 29259)
        XCTAssertEqual(a.owner?.text, "myhost:1234")
        XCTAssertTrue(a.isLocksmith)
        XCTAssertEqual(a.host, "myhost", "a locksmith lk-owner names the host")
        XCTAssertEqual(a.holderPID, 1234)
        XCTAssertTrue(a.connectionID?.hasPrefix("CTX_ID:3045a18a-") ?? false)

        // A record is on its own path only, by bytes: not on the path's NFD twin.
        XCTAssertTrue(a.isOn("/a.img", .active))
        XCTAssertFalse(a.isOn("/a.img", .blocked))
        var nfc = a, nfd = a
        (nfc.path, nfd.path) = ("/vm-\u{E9}.img", "/vm-e\u{301}.img")
        XCTAssertEqual(nfc.path, nfd.path, "Swift calls them equal")
        XCTAssertEqual([nfc, nfd].filter { $0.isOn(nfc.path, .active) }.map { Array($0.path.utf8) }, [Array(nfc.path.utf8)])
    }

    func testConflictingHoldersFromRecords() {
        let records = GlusterStatedump.locks(in: realStatedump)
        // /b.img: a granted READ lock (and a blocked WRITE, which holds nothing).
        XCTAssertEqual(GlusterLockHolder.conflicting(in: records, path: "/b.img", type: .read), [],
                       "shared locks coexist; waiters are not holders")
        let w = GlusterLockHolder.conflicting(in: records, path: "/b.img", type: .write)
        XCTAssertEqual(w.map(\.pid), [29396])
        XCTAssertEqual(w.first?.host, "vm")
        XCTAssertEqual(w.first?.source, .statedump)
        // Ranges: a lock on bytes 40-49 does not meet 0-9 or 20-29.
        XCTAssertEqual(GlusterLockHolder.conflicting(in: records, path: "/dir with space.img", type: .write,
                                                     range: ByteRange(start: 40, length: 10)), [])
        XCTAssertEqual(GlusterLockHolder.conflicting(in: records, path: "/dir with space.img", type: .read).map(\.type),
                       [.write])
        XCTAssertEqual(GlusterLockHolder.conflicting(in: records, path: "/nothing.img", type: .write), [])
    }

    func testOddDumpLinesAreSkipped() {
        let text = """
            [xlator.features.locks.v2-locks.inode]
            path=/x.img
            posixlk-count=3
            posixlk.posixlk[0](ACTIVE)=type=WRITE, whence=0, start=0, len=0, pid = 7, owner=01020304, client=0x1, connection-id=odd-format, granted at t
            posixlk.posixlk[1](WEIRD)=type=WRITE, whence=0, start=0, len=0, pid = 7
            posixlk.posixlk[2](ACTIVE)=type=UNKNOWN, whence=0, start=0, len=0
            inodelk.inodelk[0](ACTIVE)=type=WRITE, whence=0, start=0, len=0, pid = 9

            [other.section]
            posixlk.posixlk[0](ACTIVE)=type=READ, whence=0, start=0, len=0, pid = 8
            """
        let r = GlusterStatedump.locks(in: text)
        XCTAssertEqual(r.count, 1)
        XCTAssertEqual(r.first?.volume, "v2")
        XCTAssertEqual(r.first?.pid, 7)
        XCTAssertNil(r.first?.clientHost, "an unknown connection-id format gives no host")
        XCTAssertNil(r.first?.host)
        XCTAssertEqual(r.first?.owner?.bytes, [1, 2, 3, 4], "gfapi's default owner: 4 opaque bytes")
        XCTAssertEqual(GlusterStatedump.filePrefix(brickPath: "/tmp/locksmith-gluster/bricks/b1"),
                       "tmp-locksmith-gluster-bricks-b1")
    }

    /// `gluster volume get` as GlusterFS 10.3 prints it, set and unset (`(DEFAULT)`), plain and --xml.
    func testVolumeGetValueWithoutDefaultSuffix() {
        let header = "Option                                   Value                                  \n" +
            "------                                   -----                                  \n"
        let unset = header + "server.statedump-path                    /var/run/gluster (DEFAULT)             \n"
        let set = header + "server.statedump-path                    /tmp/locksmith-gluster/dumps           \n"
        func xml(_ v: String) -> String {
            """
            <?xml version="1.0" encoding="UTF-8" standalone="yes"?>
            <cliOutput>
              <opRet>0</opRet>
              <opErrno>0</opErrno>
              <opErrstr/>
              <volGetopts>
                <count>1</count>
                <Opt>
                  <Option>server.statedump-path</Option>
                  <Value>\(v)</Value>
                </Opt>
              </volGetopts>
            </cliOutput>
            """
        }
        let o = "server.statedump-path"
        XCTAssertEqual(GlusterCLI.optionValue(o, in: unset), "/var/run/gluster")
        XCTAssertEqual(GlusterCLI.optionValue(o, in: set), "/tmp/locksmith-gluster/dumps")
        XCTAssertEqual(GlusterCLI.optionValue(o, in: xml("/var/run/gluster (DEFAULT)")), "/var/run/gluster")
        XCTAssertEqual(GlusterCLI.optionValue(o, in: xml("/srv/dumps")), "/srv/dumps")
        XCTAssertEqual(GlusterCLI.optionValue(o, in: xml("/srv/a dir")), "/srv/a dir", "inner spaces stay")
        XCTAssertNil(GlusterCLI.optionValue(o, in: header), "no row")
        XCTAssertNil(GlusterCLI.optionValue(o, in: header + "server.statedump-path-other   /x\n"), "a longer name is another option")
    }
}
