import FoundationEssentials
import ImageLock

/// Who uses a base image through an overlay that is not in the asked-about chain.
public enum OverlayScan {
    /// Processes that hold a chain member because they opened an overlay of it that is not
    /// in the chain (`why base.qcow2` while a VM runs `vm.qcow2` on top of it): their other
    /// QEMU-locked files whose backing chain reaches the member.
    public static func overlayUses(images: [ImageLocks], chain: [ChainLink], procRoot: String = "/proc") -> [OverlayUse] {
        var out: [OverlayUse] = []
        let members = Set(chain.compactMap { $0.file.inode })
        for e in images {
            guard let path = e.path else { continue }
            for pid in Set(e.holders.filter { $0.scheme == .qemu }.map(\.pid)) {
                let dir = "\(procRoot)/\(pid)/fdinfo"
                for name in ProcFS.list(dir) ?? [] {
                    guard let text = ProcFS.read("\(dir)/\(name)"), let info = FDInfo(text: Substring(text)),
                          info.locks.contains(where: \.isQemuByteLock),
                          let ino = info.inode, !members.contains(ino) else { continue }
                    let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: "\(procRoot)/\(pid)/fd/\(name)")) ?? ""
                    guard target.hasPrefix("/") else { continue }
                    let sub = WhyFacts.backingChain(of: target)
                    if sub.dropFirst().contains(where: { PathBytes.same($0.file.path, path) }) {
                        let use = OverlayUse(pid: pid, overlay: sub[0].file.path, base: path)
                        if !out.contains(use) { out.append(use) }
                    }
                }
            }
        }
        return out
    }
}
