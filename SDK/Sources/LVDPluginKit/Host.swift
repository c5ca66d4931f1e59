import LVDFormats
import LVDSDK

/// Log levels of `lvd_host.log`.
public enum LogLevel: Int32, Sendable {
    case trace = 0, debug, info, warning, error
}

/// The host as a plugin sees it: logging, progress, cancellation and service tables,
/// over the `lvd_host` C struct. Thread-safe (the host's functions are).
public final class HostContext: @unchecked Sendable {
    public let raw: UnsafePointer<lvd_host>
    /// Shown as the source of log lines and progress (the plugin id).
    public let source: String

    public init(raw: UnsafePointer<lvd_host>, source: String) {
        self.raw = raw
        self.source = source
    }

    public var hostName: String { raw.pointee.name.map { String(cString: $0) } ?? "?" }
    public var abiVersion: (major: UInt32, minor: UInt32) { (raw.pointee.abi_major, raw.pointee.abi_minor) }

    public func log(_ level: LogLevel, _ message: String) {
        raw.pointee.log?(raw, level.rawValue, source, message)
    }

    public func progress(done: Int, total: Int, what: String) {
        raw.pointee.progress?(raw, source, Int64(done), Int64(total), what)
    }

    public var isCancelled: Bool { raw.pointee.is_cancelled?(raw) ?? false }

    /// Throws `PluginError.cancelled` once the host asked to stop; call it between units of work.
    public func checkCancellation() throws(PluginError) {
        if isCancelled { throw PluginError(LVD_ERR_CANCELLED, "cancelled") }
    }

    /// The service table `id` ("lvd.tensor/1"), or nil when the host does not offer it or its
    /// table is smaller than the fields this plugin was built to read.
    public func extensionTable<Table>(_ id: String, as _: Table.Type, minimumSize: Int = MemoryLayout<Table>.size) -> UnsafePointer<Table>? {
        guard let pointer = raw.pointee.get_extension?(raw, id) else { return nil }
        let size = pointer.load(as: UInt32.self)
        guard Int(size) >= minimumSize else {
            log(.warning, "host extension \(id) is \(size) bytes, this plugin needs \(minimumSize); not used")
            return nil
        }
        return pointer.assumingMemoryBound(to: Table.self)
    }
}

/// An error a plugin reports across the ABI: a status and a one-line message.
public struct PluginError: Error, CustomStringConvertible, Sendable {
    public var status: lvd_status
    public var message: String

    public init(_ status: Int32, _ message: String) {
        self.status = status
        self.message = message
    }

    public static func invalidArgument(_ message: String) -> PluginError { PluginError(LVD_ERR_INVALID_ARGUMENT, message) }
    public static func notFound(_ message: String) -> PluginError { PluginError(LVD_ERR_NOT_FOUND, message) }
    public static func unsupported(_ message: String) -> PluginError { PluginError(LVD_ERR_UNSUPPORTED, message) }
    public static func io(_ message: String) -> PluginError { PluginError(LVD_ERR_IO, message) }

    public var description: String { message }
}

/// Status and message for any error a plugin throws: PluginError keeps its status; errors that
/// describe bad input (layout, params, JSON) are invalid-argument; anything else is internal.
func statusAndMessage(of error: Error) -> (lvd_status, String) {
    switch error {
    case let error as PluginError: return (error.status, error.message)
    case let error as CustomStringConvertible where error is InputError: return (LVD_ERR_INVALID_ARGUMENT, error.description)
    default: return (LVD_ERR_INTERNAL, "\(error)")
    }
}

/// Marks error types whose cause is the caller's input.
public protocol InputError: Error {}

extension LayoutError: InputError {}
extension ParamsError: InputError {}
extension JSONSyntaxError: InputError {}
