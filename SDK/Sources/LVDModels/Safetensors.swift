import Foundation
import LVDFormats
import LVDRuntime

/// A `.safetensors` file: an 8-byte little-endian header length, a JSON header describing each
/// tensor (dtype, shape, byte range in the data section), then the data. Read by mmap; the
/// header is validated completely before anything is used, and every error names the file and,
/// where there is one, the tensor.
public final class SafetensorsFile: @unchecked Sendable {
    public struct Entry: Equatable, Sendable {
        public var name: String
        public var dtype: String
        public var shape: [Int]
        /// Byte range within the data section.
        public var begin: Int
        public var end: Int
    }

    public let path: String
    public let entries: [String: Entry]
    public let metadata: [String: String]
    private let mapping: MappedFile
    private let dataStart: Int

    /// Bytes per element of every dtype the format defines.
    static let dtypeSizes: [String: Int] = [
        "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
        "U16": 2, "U32": 4, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1,
    ]
    /// Largest header accepted (the format's reference implementation uses 100 MB).
    static let maxHeaderBytes = 100_000_000

    public convenience init(path: String) throws(ModelError) {
        let mapping: MappedFile
        do { mapping = try MappedFile(path: path) } catch { throw ModelError(file: path, reason: error.reason) }
        try self.init(path: path, mapping: mapping)
    }

    /// Parses a file already in memory (tests and fuzzing).
    public convenience init(bytes: [UInt8], name: String) throws(ModelError) {
        try self.init(path: name, mapping: MappedFile(copying: bytes))
    }

    private init(path: String, mapping: MappedFile) throws(ModelError) {
        func fail(_ reason: String) -> ModelError { ModelError(file: path, reason: reason) }
        self.path = path
        self.mapping = mapping
        let size = mapping.count
        guard size >= 8 else { throw fail("not a safetensors file: \(size) bytes, shorter than the 8-byte header length") }
        var length = 0
        for i in 0..<8 { length |= Int(mapping.bytes.load(fromByteOffset: i, as: UInt8.self)) << (8 * i) }
        guard length >= 2, length <= Self.maxHeaderBytes else { throw fail("header length \(length) is out of range") }
        guard length <= size - 8 else { throw fail("header length \(length) exceeds the file (\(size) bytes): truncated or not safetensors") }
        dataStart = 8 + length
        let headerBytes = [UInt8](UnsafeRawBufferPointer(start: mapping.bytes + 8, count: length))
        let header: JSONValue
        do { header = try JSONValue.parse(bytes: headerBytes) } catch { throw fail("header is not valid JSON: \(error)") }
        guard let object = header.objectValue else { throw fail("header must be a JSON object") }

        let dataSize = size - dataStart
        var entries: [String: Entry] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in object {
            if name == "__metadata__" {
                guard let fields = value.objectValue else { throw fail("__metadata__ must be an object of strings") }
                for (key, field) in fields {
                    guard let text = field.stringValue else { throw fail("__metadata__.\(key) must be a string") }
                    metadata[key] = text
                }
                continue
            }
            guard let fields = value.objectValue else { throw fail("tensor '\(name)': entry must be an object") }
            guard let dtype = fields["dtype"]?.stringValue, let elementSize = Self.dtypeSizes[dtype] else {
                throw fail("tensor '\(name)': unknown dtype \(fields["dtype"]?.serialized() ?? "(missing)")")
            }
            guard let shapeList = fields["shape"]?.arrayValue else { throw fail("tensor '\(name)': missing shape") }
            var shape: [Int] = []
            var elements = 1
            for extent in shapeList {
                guard let n = extent.intValue, n >= 0 else { throw fail("tensor '\(name)': shape \(fields["shape"]!.serialized()) is not a list of non-negative integers") }
                let (product, overflow) = elements.multipliedReportingOverflow(by: n)
                guard !overflow, product <= dataSize else { throw fail("tensor '\(name)': shape \(shapeList.map { $0.serialized() }) is larger than the file") }
                shape.append(n)
                elements = product
            }
            guard let offsets = fields["data_offsets"]?.arrayValue, offsets.count == 2,
                  let begin = offsets[0].intValue, let end = offsets[1].intValue else {
                throw fail("tensor '\(name)': data_offsets must be [begin, end]")
            }
            guard begin >= 0, begin <= end, end <= dataSize else {
                throw fail("tensor '\(name)': data_offsets [\(begin), \(end)] lie outside the data section (\(dataSize) bytes)")
            }
            guard end - begin == elements * elementSize else {
                throw fail("tensor '\(name)': \(end - begin) bytes for \(dtype) shape \(shape) (needs \(elements * elementSize))")
            }
            entries[name] = Entry(name: name, dtype: dtype, shape: shape, begin: begin, end: end)
        }
        // Byte ranges must not overlap (empty tensors take no bytes).
        let ordered = entries.values.filter { $0.end > $0.begin }.sorted { $0.begin < $1.begin }
        for (previous, next) in zip(ordered, ordered.dropFirst()) where next.begin < previous.end {
            throw fail("tensors '\(previous.name)' and '\(next.name)' overlap (bytes \(previous.begin)..<\(previous.end) and \(next.begin)..<\(next.end))")
        }
        self.entries = entries
        self.metadata = metadata
    }

    /// The tensor as f32 compute storage: F32 data is used in place (zero copy) when aligned,
    /// F16/BF16 are converted.
    public func tensor(_ name: String) throws(ModelError) -> Tensor {
        guard let entry = entries[name] else { throw ModelError(file: path, reason: "no tensor '\(name)'") }
        let dtype: DType
        switch entry.dtype {
        case "F32": dtype = .f32
        case "F16": dtype = .f16
        case "BF16": dtype = .bf16
        default: throw ModelError(file: path, reason: "tensor '\(name)': dtype \(entry.dtype) is not a weight type (F32, F16, BF16)")
        }
        let start = mapping.bytes + dataStart + entry.begin
        let bytes = UnsafeRawBufferPointer(start: start, count: entry.end - entry.begin)
        do {
            if dtype == .f32, Int(bitPattern: start) % 4 == 0 {
                let storage = Storage(borrowing: UnsafeMutableRawPointer(mutating: start), byteCount: bytes.count, owner: mapping)
                return Tensor.view(storage: storage, shape: entry.shape)
            }
            return try Tensor.fromBytes(bytes, shape: entry.shape, dtype: dtype).to(.f32)
        } catch {
            throw ModelError(file: path, reason: "tensor '\(name)': \(error)")
        }
    }
}

/// A file mapped read-only (or bytes held in memory); unmapped when the last tensor using it goes.
final class MappedFile: @unchecked Sendable {
    let bytes: UnsafeRawPointer
    let count: Int
    private let mapped: Bool

    struct Failure: Error { let reason: String }

    init(path: String) throws(Failure) {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw Failure(reason: "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw Failure(reason: "cannot stat: \(String(cString: strerror(errno)))") }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw Failure(reason: "not a regular file") }
        count = Int(info.st_size)
        if count == 0 {
            bytes = UnsafeRawPointer(UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 8))
            mapped = false
            return
        }
        guard let address = mmap(nil, count, PROT_READ, MAP_PRIVATE, fd, 0), address != MAP_FAILED else {
            throw Failure(reason: "cannot map: \(String(cString: strerror(errno)))")
        }
        bytes = UnsafeRawPointer(address)
        mapped = true
    }

    init(copying source: [UInt8]) {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: Swift.max(source.count, 1), alignment: 64)
        source.withUnsafeBytes { if $0.count > 0 { buffer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
        bytes = UnsafeRawPointer(buffer)
        count = source.count
        mapped = false
    }

    deinit {
        if mapped { munmap(UnsafeMutableRawPointer(mutating: bytes), count) } else { UnsafeMutableRawPointer(mutating: bytes).deallocate() }
    }
}

/// A model file or folder that cannot be used: which file and why (and which tensor or key).
public struct ModelError: Error, CustomStringConvertible, Equatable {
    public var file: String
    public var reason: String
    public init(file: String, reason: String) {
        self.file = file
        self.reason = reason
    }
    public var description: String { "\(file): \(reason)" }
}

extension Module {
    /// Sets every parameter from `files`, strictly: each parameter must be present with the
    /// declared shape, and every checkpoint tensor must be used (after `sanitize`, which maps a
    /// checkpoint key to the model's key or nil to drop it — the one place checkpoint quirks live).
    public func load(from files: [SafetensorsFile], sanitize: (String) -> String? = { $0 }) throws(ModelError) {
        var available: [String: (file: SafetensorsFile, name: String)] = [:]
        for file in files {
            for name in file.entries.keys {
                guard let key = sanitize(name) else { continue }
                if let other = available[key] {
                    throw ModelError(file: file.path, reason: "tensor '\(name)' is also in \(other.file.path) as '\(other.name)'")
                }
                available[key] = (file, name)
            }
        }
        let where_ = files.map(\.path).joined(separator: ", ")
        var used = Set<String>()
        for (key, parameter) in namedParameters() {
            guard let source = available[key] else {
                throw ModelError(file: files.count == 1 ? where_ : "[\(where_)]", reason: "missing tensor '\(key)' (shape \(parameter.shape))")
            }
            let entry = source.file.entries[source.name]!
            guard entry.shape == parameter.shape else {
                throw ModelError(file: source.file.path, reason: "tensor '\(source.name)' has shape \(entry.shape), the model expects \(parameter.shape)")
            }
            parameter.value = try source.file.tensor(source.name)
            used.insert(key)
        }
        let unused = available.keys.filter { !used.contains($0) }.sorted()
        if !unused.isEmpty {
            let source = available[unused[0]]!
            throw ModelError(file: source.file.path,
                             reason: "\(unused.count) tensor(s) the model does not have, e.g. '\(source.name)'" + (unused.count > 1 ? ", '\(available[unused[1]]!.name)'" : ""))
        }
    }
}

extension SafetensorsFile {
    /// Writes `tensors` as an F32 safetensors file (keys sorted, as safetensors' own writer does).
    /// For models made in code — random weights for tests and benchmarks.
    public static func write(_ tensors: [(key: String, tensor: Tensor)], to path: String) throws {
        var header: [String] = []
        var payload = Data()
        for (key, tensor) in tensors.sorted(by: { $0.key < $1.key }) {
            let values = try tensor.toArray()
            let start = payload.count
            values.withUnsafeBytes { payload.append(contentsOf: $0) }
            header.append("\"\(key)\": {\"dtype\": \"F32\", \"shape\": [\(tensor.shape.map(String.init).joined(separator: ", "))], \"data_offsets\": [\(start), \(payload.count)]}")
        }
        var text = Array(("{" + header.joined(separator: ", ") + "}").utf8)
        while text.count % 8 != 0 { text.append(0x20) }
        var file = Data()
        withUnsafeBytes(of: UInt64(text.count).littleEndian) { file.append(contentsOf: $0) }
        file.append(contentsOf: text)
        file.append(payload)
        try file.write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}

extension Module {
    /// Every parameter with its checkpoint key, for writing.
    public func parameterTensors() throws(TensorError) -> [(key: String, tensor: Tensor)] {
        try namedParameters().map { entry throws(TensorError) in (entry.key, try entry.parameter.tensor) }
    }
}
