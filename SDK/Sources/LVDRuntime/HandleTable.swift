import Synchronization

/// Errors of the handle table, each with the message the ABI passes on.
public enum HandleError: Error, CustomStringConvertible, Equatable {
    case null(kind: String)
    case released(kind: String, handle: UInt)

    public var description: String {
        switch self {
        case .null(let kind): return "\(kind) handle is NULL"
        case .released(let kind, let handle):
            return "\(kind) handle 0x\(String(handle, radix: 16)) was released or never created"
        }
    }
}

/// Opaque, reference-counted handles for objects that cross the C ABI.
///
/// A handle is a never-reused integer disguised as a pointer (never dereferenced by anyone), so a
/// handle used after its last release is always detected instead of aliasing a newer object.
/// Thread-safe.
public final class HandleTable<Object: AnyObject>: Sendable {
    private struct Entry {
        let object: Object
        var references: Int
    }
    private struct State {
        var entries: [UInt: Entry] = [:]
        var next: UInt = 1
    }

    /// Shown in messages: "tensor handle 0x… was released".
    public let kind: String
    private let state = Mutex(State())

    public init(kind: String) { self.kind = kind }

    /// Registers `object` and returns a handle holding one reference.
    public func insert(_ object: Object) -> OpaquePointer {
        state.withLock { state in
            let id = state.next
            // Multiples of 16 keep the value pointer-aligned for tools that check alignment.
            state.next += 1
            state.entries[id] = Entry(object: object, references: 1)
            return OpaquePointer(bitPattern: id << 4)!
        }
    }

    /// The object behind `handle`.
    public func resolve(_ handle: OpaquePointer?) throws(HandleError) -> Object {
        let id = try key(handle)
        let object = state.withLock { $0.entries[id]?.object }
        guard let object else { throw .released(kind: kind, handle: id << 4) }
        return object
    }

    public func retain(_ handle: OpaquePointer?) throws(HandleError) {
        let id = try key(handle)
        let found = state.withLock { state -> Bool in
            guard state.entries[id] != nil else { return false }
            state.entries[id]!.references += 1
            return true
        }
        if !found { throw .released(kind: kind, handle: id << 4) }
    }

    public func release(_ handle: OpaquePointer?) throws(HandleError) {
        let id = try key(handle)
        // The object is dropped outside the lock: its deinit may release other handles.
        let (found, dropped) = state.withLock { state -> (Bool, Object?) in
            guard var entry = state.entries[id] else { return (false, nil) }
            entry.references -= 1
            if entry.references == 0 {
                state.entries[id] = nil
                return (true, entry.object)
            }
            state.entries[id] = entry
            return (true, nil)
        }
        _ = dropped
        if !found { throw .released(kind: kind, handle: id << 4) }
    }

    /// Number of live handles.
    public var count: Int { state.withLock { $0.entries.count } }

    private func key(_ handle: OpaquePointer?) throws(HandleError) -> UInt {
        guard let handle else { throw .null(kind: kind) }
        return UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(handle))) >> 4
    }
}
