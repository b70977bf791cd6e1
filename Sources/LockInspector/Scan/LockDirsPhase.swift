// Phase 2 of a scan (Scan.swift): the lock dirs and lease dirs. On the host they are
// listed on their own thread (`LockDirectories`, Directories.swift); for focused images
// only their own lock files are looked at, by name. After the holders are found, the held
// ones are marked.
import FoundationEssentials
import ImageLock

extension Scan {
    /// Phase 2 under way: the focused images' own lock files, or the threads reading the
    /// lock dirs and the --images and libvirt dirs.
    struct StartedDirectories {
        var focused: LockFiles?
        var lockDirs: ThreadWork<LockDirectories>?
        var imageDirs: ThreadWork<ImageDirectories>?
    }

    mutating func startLockDirectories() -> StartedDirectories {
        switch scope {
        case .focused(let focus):
            let (lockFiles, leaseFiles) = focusedFiles(focus)
            return StartedDirectories(focused: LockFiles(lockFiles: lockFiles, leaseFiles: leaseFiles))
        case .host:
            let o = options
            var out = StartedDirectories()
            out.lockDirs = ThreadWork { LockDirectories.read(lockDirectories: o.lockDirectories, leaseDirectories: o.leaseDirectories) }
            if !o.imageDirectories.isEmpty || !o.libvirtDirectories.isEmpty {
                out.imageDirs = ThreadWork {
                    ImageDirectories.read(imageDirectories: o.imageDirectories, libvirtDirectories: o.libvirtDirectories,
                                          statImages: o.lockFileStatus)
                }
            }
            return out
        }
    }

    /// The lock files and lease files, with the lock files by key.
    mutating func finishLockDirectories(_ started: StartedDirectories, timings t: inout SnapshotTimings) -> LockFiles {
        var files = started.focused ?? LockFiles()
        if let dirs = started.lockDirs?.wait() {
            (files.lockFiles, files.leaseFiles) = (dirs.lockFiles, dirs.leaseFiles)
            unseen.insert(contentsOf: dirs.unseen, at: 0)
            t.lockDirectories = dirs.seconds
        }
        if options.lockFileStatus && scope.isHost {
            // The audit's lstat of each entry, on a thread of its own while the scan goes on
            // (put in the entries at its end: `applyLockFileStatuses`).
            let (lockFiles, leaseFiles) = (files.lockFiles, files.leaseFiles)
            lockFileStatuses = ThreadWork { (LockDirectories.statuses(of: lockFiles), LockDirectories.statuses(of: leaseFiles)) }
        }
        files.keys.reserveCapacity(files.lockFiles.count)
        for i in files.lockFiles.indices.reversed() {
            files.keys[FileKey(device: files.lockFiles[i].device, inode: files.lockFiles[i].inode)] = i
        }
        return files
    }

    /// The lstat of each lock file and lease file (`InspectorOptions.lockFileStatus`), into
    /// the entries; nothing without it.
    mutating func applyLockFileStatuses(_ files: inout LockFiles) {
        guard let (lockFiles, leaseFiles) = lockFileStatusResult() else { return }
        lockFileStatusesDone = nil
        LockDirectories.apply(lockFiles, to: &files.lockFiles)
        LockDirectories.apply(leaseFiles, to: &files.leaseFiles)
    }

    /// The audit's lstat of each lock file and lease file (in the order the dirs listed
    /// them), waited for once; nil without `lockFileStatus`.
    mutating func lockFileStatusResult() -> ([FileStatus?], [FileStatus?])? {
        if let work = lockFileStatuses {
            lockFileStatuses = nil
            lockFileStatusesDone = work.wait()
        }
        return lockFileStatusesDone
    }

    /// Marks the lock files and lease files the kernel lists a held lock on.
    func markHeld(_ files: inout LockFiles, rows: Rows) {
        for (key, fileRows) in rows.byFile where fileRows.contains(where: { !$0.isWaiter }) {
            if let i = files.keys[key] { files.lockFiles[i].held = true }
        }
        // Hard links: every name of a held file is held. Only where names share a key (fewer
        // keys than lock files): else it would be a lookup per unheld lock file for nothing
        // (50k at 100k).
        if files.keys.count < files.lockFiles.count {
            for i in files.lockFiles.indices where !files.lockFiles[i].held {
                let key = FileKey(device: files.lockFiles[i].device, inode: files.lockFiles[i].inode)
                if let first = files.keys[key], first != i { files.lockFiles[i].held = files.lockFiles[first].held }
            }
        }
        for i in files.leaseFiles.indices {
            files.leaseFiles[i].held = rows.byFile[FileKey(device: files.leaseFiles[i].device, inode: files.leaseFiles[i].inode)]?
                .contains { !$0.isWaiter } ?? false
        }
    }

    /// The focused images' lock files and lease files, by lstat of their exact names
    /// (no directory listing); each is mapped to its image by name.
    mutating func focusedFiles(_ focus: [InspectorFocus]) -> (lockFiles: [LockFileEntry], leaseFiles: [LockFileEntry]) {
        func entry(_ path: String, image: String) -> LockFileEntry? {
            guard case .success(let s) = Sys.lstat(path) else { return nil }
            var e = LockFileEntry(path: path, kind: s.kind, device: s.deviceID, inode: s.inode, held: false)
            e.image = image
            e.mappedBy = "name"
            return e
        }
        var lockFiles: [LockFileEntry] = []
        var leaseFiles: [LockFileEntry] = []
        for f in focus {
            lockFiles += f.lockFiles.compactMap { entry($0, image: f.image) }
            for dir in options.leaseDirectories {
                let base = dir.hasSuffix("/") ? String(dir.dropLast()) : dir
                if let e = entry(base + "/" + Digest.sha256Hex(f.image), image: f.image) { leaseFiles.append(e) }
            }
        }
        return (lockFiles, leaseFiles)
    }

}
