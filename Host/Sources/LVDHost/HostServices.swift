import Foundation
import LVDModels
import LVDRuntime
import LVDSDK
import Logging
import Synchronization

/// The `lvd_host` every plugin receives: logging into swift-log, progress into the CLI's
/// display, cancellation from Ctrl-C, and the service tables (`lvd.tensor/1`, …).
public final class HostServices: @unchecked Sendable {
    public static let shared = HostServices()

    public static let hostVersion = "0.1.0"

    /// Receives plugin progress: (source, done, total, what). Called on the plugin's thread.
    public typealias ProgressHandler = @Sendable (String, Int64, Int64, String) -> Void

    public let table: UnsafePointer<lvd_host>
    private let cancelled = Atomic<Bool>(false)
    private let progressHandler = Mutex<ProgressHandler?>(nil)
    let logger: Logger
    /// Service tables by versioned id.
    let extensions: [String: UnsafeRawPointer]

    private init() {
        logger = Logger(label: "lvd.plugin")
        extensions = [LVD_TENSOR_EXTENSION_ID: UnsafeRawPointer(TensorAPI.table),
                      LVD_MODEL_EXTENSION_ID: UnsafeRawPointer(ModelAPI.table)]
        let host = UnsafeMutablePointer<lvd_host>.allocate(capacity: 1)
        host.initialize(to: lvd_host(
            struct_size: UInt32(MemoryLayout<lvd_host>.size),
            abi_major: UInt32(LVD_ABI_MAJOR),
            abi_minor: UInt32(LVD_ABI_MINOR),
            name: UnsafePointer(strdup("lvd")),
            version: UnsafePointer(strdup(HostServices.hostVersion)),
            host_data: nil,
            log: { _, level, source, message in
                let services = HostServices.shared
                let text = message.map { String(cString: $0) } ?? ""
                let origin = source.map { String(cString: $0) } ?? "plugin"
                services.logger.log(level: HostServices.logLevel(level), "\(text)", metadata: ["plugin": "\(origin)"])
            },
            progress: { _, source, done, total, what in
                let origin = source.map { String(cString: $0) } ?? "plugin"
                let label = what.map { String(cString: $0) } ?? ""
                HostServices.shared.progressHandler.withLock { $0 }?(origin, done, total, label)
            },
            is_cancelled: { _ in HostServices.shared.isCancelled },
            get_extension: { _, id in
                guard let id else { return nil }
                return HostServices.shared.extensions[String(cString: id)]
            }))
        table = UnsafePointer(host)
    }

    public var isCancelled: Bool { cancelled.load(ordering: .relaxed) }

    /// Asks every plugin to stop at its next check (Ctrl-C).
    public func cancel() { cancelled.store(true, ordering: .relaxed) }

    public func setProgressHandler(_ handler: ProgressHandler?) { progressHandler.withLock { $0 = handler } }

    static func logLevel(_ level: Int32) -> Logger.Level {
        switch level {
        case LVD_LOG_TRACE: return .trace
        case LVD_LOG_DEBUG: return .debug
        case LVD_LOG_INFO: return .info
        case LVD_LOG_WARNING: return .warning
        default: return .error
        }
    }
}

/// Ctrl-C handling for long work: the first SIGINT asks every plugin to stop (they poll
/// `lvd_host.is_cancelled` and return LVD_ERR_CANCELLED, so finished results are kept); a
/// second one exits at once with status 130 — or the first, for work that has nothing to keep
/// (`quitAtOnce`: the kernel benchmarks). Child processes run in their own process groups
/// (Foundation starts them so), so a terminal's Ctrl-C does not reach them: each SIGINT is passed
/// on to the tracked children, as the signal each was tracked with — a child `lvd` stops after
/// its step at the first and quits at the second; a reference Python is ended (SIGTERM).
public enum InterruptHandler {
    nonisolated(unsafe) private static var source: DispatchSourceSignal?
    private static let children = Mutex<[pid_t: Int32]>([:])

    public static func install(services: HostServices = .shared, quitAtOnce: Bool = false) {
        guard source == nil else { return }
        signal(SIGINT, SIG_IGN)
        let signals = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        signals.setEventHandler {
            let running = children.withLock { $0 }
            for (pid, signal) in running { kill(pid, signal) }
            if services.isCancelled || quitAtOnce {
                if quitAtOnce { FileHandle.standardError.write(Data("\nlvd: interrupted\n".utf8)) }
                exit(130)
            }
            services.cancel()
            FileHandle.standardError.write(Data("\nlvd: stopping after the current step (Ctrl-C again to quit now)\n".utf8))
        }
        signals.resume()
        source = signals
    }

    /// Passes this process's Ctrl-C on to `pid`, as `signal`, until `untrack`; a child started
    /// after the first Ctrl-C gets it at once.
    public static func track(child pid: pid_t, signal: Int32 = SIGINT, services: HostServices = .shared) {
        children.withLock { $0[pid] = signal }
        if services.isCancelled { kill(pid, signal) }
    }

    public static func untrack(child pid: pid_t) {
        children.withLock { _ = $0.removeValue(forKey: pid) }
    }
}

/// A child `lvd` that another started (`compare`, the benchmarks: `LVD_PARENT_PID` in its
/// environment) stops after its current step when that parent is gone — killed with -9, say —
/// rather than running on where nobody waits for it.
public enum ParentWatch {
    public static let environmentKey = "LVD_PARENT_PID"
    nonisolated(unsafe) private static var installed = false

    public static func install(services: HostServices = .shared, environment: [String: String] = ProcessInfo.processInfo.environment) {
        guard !installed, let text = environment[environmentKey], let parent = pid_t(text) else { return }
        installed = true
        // Meant for this process only: not for what it starts in turn (a plugin's own lvd), and
        // not when this process's parent is another (the variable came from further up).
        unsetenv(environmentKey)
        guard getppid() == parent else { return }
        Thread.detachNewThread {
            while getppid() == parent { usleep(250_000) }
            FileHandle.standardError.write(Data("lvd: the lvd that started this one (pid \(parent)) is gone: stopping after the current step\n".utf8))
            services.cancel()
        }
    }
}

/// This process's memory figures from /proc/self/status.
public enum ProcessMemory {
    /// Peak resident set size in bytes (VmHWM), 0 when unknown.
    public static var peakResidentBytes: Int {
        guard let handle = FileHandle(forReadingAtPath: "/proc/self/status") else { return 0 }
        return peakResidentBytes(status: String(decoding: handle.readDataToEndOfFile(), as: UTF8.self))
    }

    /// VmHWM from a status text: "VmHWM:\t  123456 kB" — the padding after the tab shrinks as the
    /// number grows, down to none at eight digits.
    public static func peakResidentBytes(status: String) -> Int {
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") } ?? ""
        let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
        return (fields.count > 1 ? Int(fields[1]) ?? 0 : 0) * 1024
    }
}
