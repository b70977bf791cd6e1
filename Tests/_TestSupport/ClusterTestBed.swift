import Foundation
import XCTest

/// The simulated hypervisors of scripts/cluster-testbed (which scripts/run-tests starts):
/// hosts h1..hN on this machine, each with its own network, UTS, PID and mount namespace,
/// sharing the GlusterFS volume mounted (FUSE) at `shared` on every one. Commands run inside
/// a host with `nsenter -t <its sshd> -a`; nothing is dialled but the bed's own addresses.
public struct ClusterTestBed: Sendable {
    public struct Host: Sendable {
        public var name: String
        /// The host's sshd (its PID namespace's pid 1) as this namespace numbers it.
        public var pid: Int32
        public var address: String
    }

    public var hosts: [Host]
    public var shared: String
    public var volume: String
    /// The gluster bed's glusterd socket: a host given it can take statedumps (a server node).
    public var glusterSocket: String

    /// The running bed; fails the test (and skips the rest of it) when the environment does
    /// not name one with at least `count` hosts.
    public static func require(hosts count: Int = 2, file: StaticString = #filePath, line: UInt = #line) throws -> ClusterTestBed {
        let env = ProcessInfo.processInfo.environment
        let names = (env["CLUSTER_HOSTS"] ?? "").split(separator: " ").map(String.init)
        let hosts = names.compactMap { n -> Host? in
            let i = n.dropFirst()
            guard let pid = env["CLUSTER_H\(i)_PID"].flatMap({ Int32($0) }), let addr = env["CLUSTER_H\(i)_ADDR"] else { return nil }
            return Host(name: n, pid: pid, address: addr)
        }
        guard hosts.count >= count, hosts.count == names.count, let shared = env["CLUSTER_SHARED"],
              let vol = env["CLUSTER_VOLUME"], let sock = env["GLUSTER_SOCK"] else {
            XCTFail("""
                CLUSTER_HOSTS does not name \(count) hosts: these tests need the cluster test bed. Run them \
                through `make test` or scripts/run-tests (they start and stop it), or first run \
                eval "$(scripts/cluster-testbed start 2)" in this shell
                """, file: file, line: line)
            throw XCTSkip("no cluster test bed")
        }
        return ClusterTestBed(hosts: hosts, shared: shared, volume: vol, glusterSocket: sock)
    }

    public func host(_ name: String) -> Host { hosts.first { $0.name == name }! }

    /// Runs a program inside `host`; `serverNode` gives it the glusterd socket (GLUSTER_SOCK),
    /// else GLUSTER_SOCK is unset there.
    @discardableResult
    public func run(on host: String, _ argv: [String], serverNode: Bool = false, timeout: Double = 60) throws -> RunResult {
        let env = serverNode ? ["env", "GLUSTER_SOCK=\(glusterSocket)"] : ["env", "-u", "GLUSTER_SOCK"]
        return try Run.capture("/usr/bin/nsenter", ["-t", "\(self.host(host).pid)", "-a"] + env + argv, timeout: timeout)
    }

    /// Starts a program in the background inside `host` (its output discarded) and returns
    /// its pid as that host numbers it.
    public func spawn(on host: String, _ argv: [String]) throws -> Int32 {
        // Foundation's Process learns that its child ended when an fd it passes down is
        // closed: the background program must not keep one (close every fd above 2).
        let script = "for fd in $(ls /proc/self/fd); do [ \"$fd\" -gt 2 ] && eval \"exec $fd>&-\" 2>/dev/null; done; "
            + "\"$@\" </dev/null >/dev/null 2>&1 & echo $!"
        let r = try run(on: host, ["/bin/bash", "-c", script, "bash"] + argv)
        guard r.status == 0, let pid = Int32(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            XCTFail("could not start \(argv) on \(host): \(r)")
            throw XCTSkip("spawn failed")
        }
        return pid
    }

    /// Stops a process started by `spawn` (SIGTERM inside its host) and waits, bounded by
    /// rounds, until it is gone.
    public func stop(_ pid: Int32, on host: String) throws {
        try run(on: host, ["/bin/kill", "-TERM", "\(pid)"])
        for _ in 0..<200 {
            if try run(on: host, ["/bin/kill", "-0", "\(pid)"]).status != 0 { return }
            usleep(25_000)
        }
        try run(on: host, ["/bin/kill", "-KILL", "\(pid)"])
    }

    /// A fresh name on the shared volume, unique to this run.
    public func imagePath(_ label: String) -> String {
        "\(shared)/\(label)-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).qcow2"
    }
}
