import COpenSSL
import Foundation
import LVDFormats
import LVDSDK

/// A plugin whose library is loaded, set up and verified.
public struct LoadedPlugin: @unchecked Sendable {
    public let manifest: PluginManifest
    public let libraryPath: String
    public let name: String
    public let version: String
    public let description: String
    public let paramsSchema: ParamsSchema
    /// The interface table of `manifest.kind` (`lvd_planner` or `lvd_method`).
    public let interface: UnsafeRawPointer
    /// ABI the library was built against.
    public let abi: (major: UInt32, minor: UInt32)

    /// The parameters `create` receives: the schema's defaults, then the manifest's, then a model
    /// folder's for this method (`folder`: layers from its lvd.json, in order), then the user's
    /// `--param key=value` settings, each validated.
    public func resolveParams(_ settings: [String], folder: [(source: String, values: JSONObject)] = []) throws(PluginProblem) -> JSONObject {
        let subject = "\(manifest.kind.rawValue) '\(manifest.id)'"
        var user = JSONObject()
        for setting in settings {
            guard let equals = setting.firstIndex(of: "="), equals != setting.startIndex else {
                throw PluginProblem(file: subject, reason: "--param '\(setting)' must be key=value", pluginID: manifest.id)
            }
            let key = String(setting[..<equals]), text = String(setting[setting.index(after: equals)...])
            do { user[key] = try paramsSchema.value(for: key, fromText: text) } catch {
                throw PluginProblem(file: subject, reason: error.message, pluginID: manifest.id)
            }
        }
        do {
            return try paramsSchema.resolve([("manifest \(manifest.path)", manifest.defaults)] + folder + [("--param", user)])
        } catch {
            throw PluginProblem(file: subject, reason: error.message, pluginID: manifest.id)
        }
    }

    /// The values `create` would receive with no user settings, without demanding required ones.
    public var defaultParams: JSONObject {
        var values = JSONObject()
        for param in paramsSchema.params { if let value = param.defaultValue { values[param.name] = value } }
        for (key, value) in manifest.defaults { values[key] = value }
        return values
    }
}

/// Loads plugin libraries named by manifests — and nothing else — with every check of
/// DESIGN.md §3. A library is opened once, set up once, and never closed.
public final class PluginLoader: @unchecked Sendable {
    private struct Library {
        let path: String
        let table: UnsafePointer<lvd_plugin_library>
        /// id → descriptor, in the library's order.
        let descriptors: [(id: String, descriptor: UnsafePointer<lvd_plugin_descriptor>)]
    }

    private let host: HostServices
    private let lock = NSLock()
    /// By resolved library path: the set-up library, or why it is unusable.
    private var libraries: [String: Result<Library, LibraryFailure>] = [:]

    private struct LibraryFailure: Error { let reason: String }

    public init(host: HostServices = .shared) { self.host = host }

    /// Loads and verifies the plugin a manifest describes.
    public func load(_ manifest: PluginManifest) throws(PluginProblem) -> LoadedPlugin {
        func problem(_ reason: String) -> PluginProblem { PluginProblem(file: manifest.path, reason: reason, pluginID: manifest.id) }

        guard manifest.abiMajor == Int(LVD_ABI_MAJOR) else {
            throw problem("manifest declares ABI \(manifest.abiMajor).\(manifest.abiMinor), this host implements \(LVD_ABI_MAJOR).\(LVD_ABI_MINOR)")
        }
        let path = try resolveLibraryPath(manifest)
        if let expected = manifest.sha256 {
            guard let actual = sha256Hex(ofFile: path) else { throw problem("cannot read library \(path) to check its sha256") }
            guard actual == expected else {
                throw problem("sha256 mismatch for \(path): manifest says \(expected), file is \(actual); not loaded")
            }
        }

        let library: Library
        lock.lock()
        let cached = libraries[path]
        let result = cached ?? Result { () throws(LibraryFailure) -> Library in try open(path) }
        if cached == nil { libraries[path] = result }
        lock.unlock()
        switch result {
        case .success(let opened): library = opened
        case .failure(let failure): throw problem(failure.reason)
        }

        guard let match = library.descriptors.first(where: { $0.id == manifest.id }) else {
            let ids = library.descriptors.map(\.id)
            throw problem("library \(path) has no plugin '\(manifest.id)' (it has: \(ids.isEmpty ? "none" : ids.joined(separator: ", ")))")
        }
        let descriptor = match.descriptor.pointee
        let kind = descriptor.kind.map { String(cString: $0) } ?? ""
        guard kind == manifest.kind.rawValue else {
            throw problem("plugin '\(manifest.id)' describes itself as kind '\(kind)', the manifest says '\(manifest.kind.rawValue)'")
        }
        guard let interface = library.table.pointee.get_interface?(manifest.id, manifest.kind.interfaceID) else {
            throw problem("plugin '\(manifest.id)' claims kind '\(kind)' but serves no \(manifest.kind.interfaceID) interface")
        }
        let interfaceSize = Int(interface.load(as: UInt32.self))
        guard interfaceSize >= manifest.kind.interfaceSize else {
            throw problem("plugin '\(manifest.id)': \(manifest.kind.interfaceID) table is \(interfaceSize) bytes, ABI \(LVD_ABI_MAJOR).0 requires \(manifest.kind.interfaceSize)")
        }
        let schema: ParamsSchema
        do { schema = try ParamsSchema.parse(descriptor.params_schema.map { String(cString: $0) }) } catch {
            throw problem("plugin '\(manifest.id)': \(error.message)")
        }
        for (key, value) in manifest.defaults {
            do { try schema.validate(value, for: key) } catch { throw problem("field 'defaults': \(error.message)") }
        }
        func text(_ pointer: UnsafePointer<CChar>?) -> String { pointer.map { String(cString: $0) } ?? "" }
        return LoadedPlugin(
            manifest: manifest, libraryPath: path, name: text(descriptor.name), version: text(descriptor.version),
            description: text(descriptor.description), paramsSchema: schema, interface: interface,
            abi: (library.table.pointee.abi_major, library.table.pointee.abi_minor))
    }

    /// Calls teardown on every library that was set up. The libraries stay mapped.
    public func shutdown() {
        lock.lock()
        defer { lock.unlock() }
        for case .success(let library) in libraries.values { library.table.pointee.teardown?() }
        libraries.removeAll()
    }

    // MARK: - Steps

    private func resolveLibraryPath(_ manifest: PluginManifest) throws(PluginProblem) -> String {
        let files = FileManager.default
        let candidates = manifest.library.hasPrefix("/")
            ? [manifest.library]
            : [manifest.directory + "/" + manifest.library, HostPaths.executableDirectory + "/" + manifest.library]
        for candidate in candidates.map(HostPaths.standardize) where files.fileExists(atPath: candidate) {
            return (try? files.destinationOfSymbolicLink(atPath: candidate)).map {
                $0.hasPrefix("/") ? $0 : (candidate as NSString).deletingLastPathComponent + "/" + $0
            }.map(HostPaths.standardize) ?? candidate
        }
        throw PluginProblem(file: manifest.path,
                            reason: "library '\(manifest.library)' not found (looked in: \(candidates.map(HostPaths.standardize).joined(separator: ", ")))",
                            pluginID: manifest.id)
    }

    private func open(_ path: String) throws(LibraryFailure) -> Library {
        guard isELF(path) else { throw LibraryFailure(reason: "library \(path) is not a shared object (no ELF header)") }
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            throw LibraryFailure(reason: "cannot load library \(path): \(dlerror().map { String(cString: $0) } ?? "unknown dlopen error")")
        }
        // Never dlclose (DESIGN.md §2): a library with Swift code in it cannot be unmapped safely.
        guard let symbol = dlsym(handle, LVD_PLUGIN_ENTRY_SYMBOL) else {
            throw LibraryFailure(reason: "library \(path) exports no \(LVD_PLUGIN_ENTRY_SYMBOL) symbol (not an lvd plugin)")
        }
        let entry = unsafeBitCast(symbol, to: lvd_plugin_entry_fn.self)
        guard let table = entry() else { throw LibraryFailure(reason: "library \(path): \(LVD_PLUGIN_ENTRY_SYMBOL)() returned NULL") }

        let size = Int(table.pointee.struct_size)
        let versionEnd = MemoryLayout<lvd_plugin_library>.offset(of: \lvd_plugin_library.abi_minor)! + 4
        guard size >= versionEnd else {
            throw LibraryFailure(reason: "library \(path): entry table struct_size \(size) is too small to hold an ABI version")
        }
        let (major, minor) = (table.pointee.abi_major, table.pointee.abi_minor)
        guard major == UInt32(LVD_ABI_MAJOR) else {
            throw LibraryFailure(reason: "library \(path) was built for ABI \(major).\(minor), this host implements \(LVD_ABI_MAJOR).\(LVD_ABI_MINOR)")
        }
        // Every 1.x entry table holds at least the 1.0 fields; a plugin claiming a newer minor
        // with fewer bytes was built from inconsistent headers.
        let required = MemoryLayout<lvd_plugin_library>.size
        guard size >= required else {
            throw LibraryFailure(reason: "library \(path): entry table is \(size) bytes but ABI \(major).\(minor) requires at least \(required)")
        }
        let table10 = table.pointee
        guard table10.setup != nil, table10.teardown != nil, table10.plugin_count != nil,
              table10.plugin_descriptor != nil, table10.get_interface != nil else {
            throw LibraryFailure(reason: "library \(path): entry table has a NULL function")
        }

        var error = lvd_error.make()
        let status = table10.setup!(host.table, &error)
        guard status == LVD_OK else {
            let message = error.text
            throw LibraryFailure(reason: "library \(path): setup failed (\(String(cString: lvd_status_name(status)))): \(message.isEmpty ? "no message" : message)")
        }

        var descriptors: [(String, UnsafePointer<lvd_plugin_descriptor>)] = []
        let count = table10.plugin_count!()
        guard count <= 1024 else { throw LibraryFailure(reason: "library \(path): plugin_count() says \(count), at most 1024") }
        let descriptorSize = MemoryLayout<lvd_plugin_descriptor>.size
        for index in 0..<count {
            guard let descriptor = table10.plugin_descriptor!(index) else {
                throw LibraryFailure(reason: "library \(path): plugin_descriptor(\(index)) returned NULL (plugin_count() is \(count))")
            }
            guard Int(descriptor.pointee.struct_size) >= descriptorSize else {
                throw LibraryFailure(reason: "library \(path): descriptor \(index) is \(descriptor.pointee.struct_size) bytes, ABI 1.0 requires \(descriptorSize)")
            }
            guard let id = descriptor.pointee.id, descriptor.pointee.kind != nil else {
                throw LibraryFailure(reason: "library \(path): descriptor \(index) has no id or kind")
            }
            descriptors.append((String(cString: id), descriptor))
        }
        return Library(path: path, table: table, descriptors: descriptors)
    }

    private func isELF(_ path: String) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        return (try? handle.read(upToCount: 4)) == Data([0x7F, 0x45, 0x4C, 0x46])
    }
}

/// SHA-256 of a file's bytes as lower-case hex, or nil when it cannot be read.
public func sha256Hex(ofFile path: String) -> String? {
    guard let data = FileManager.default.contents(atPath: path) else { return nil }
    return sha256Hex(of: data)
}

/// SHA-256 of `data` as lower-case hex, or nil if libcrypto fails.
public func sha256Hex(of data: Data) -> String? {
    var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
    var length: UInt32 = 0
    let ok = data.withUnsafeBytes { bytes in
        EVP_Digest(bytes.baseAddress, bytes.count, &digest, &length, EVP_sha256(), nil)
    }
    guard ok == 1 else { return nil }
    return digest.prefix(Int(length)).map { String(format: "%02x", $0) }.joined()
}
