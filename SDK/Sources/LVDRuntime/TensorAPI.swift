import Foundation
import LVDSDK

/// The `lvd.tensor/1` service table, backed by this runtime. The host hands its address to
/// plugins through `lvd_host.get_extension`.
public enum TensorAPI {
    /// Handles of tensors that crossed the ABI.
    public static let handles = HandleTable<Tensor>(kind: "tensor")

    public static let table: UnsafePointer<lvd_tensor_api> = {
        let table = UnsafeMutablePointer<lvd_tensor_api>.allocate(capacity: 1)
        table.initialize(to: lvd_tensor_api(
            struct_size: UInt32(MemoryLayout<lvd_tensor_api>.size),
            create: { dtype, rank, shape, data, out, err in
                guard let out else { return fail(err, LVD_ERR_INVALID_ARGUMENT, "create: out is NULL") }
                guard let type = DType(rawValue: dtype) else {
                    return fail(err, LVD_ERR_INVALID_ARGUMENT, "create: unknown dtype \(dtype)")
                }
                guard rank <= UInt32(Tensor.maxRank) else {
                    return fail(err, LVD_ERR_INVALID_ARGUMENT, "create: rank \(rank) exceeds \(Tensor.maxRank)")
                }
                if rank > 0 && shape == nil { return fail(err, LVD_ERR_INVALID_ARGUMENT, "create: shape is NULL") }
                let extents = (0..<Int(rank)).map { Int(shape![$0]) }
                do {
                    // Zeros only when there is no data to copy in.
                    let tensor = try data.map { data throws(TensorError) in
                        let count = try Tensor.checkedCount(extents) * type.byteSize
                        return try Tensor.fromBytes(UnsafeRawBufferPointer(start: data, count: count), shape: extents, dtype: type)
                    } ?? Tensor.zeros(extents, dtype: type)
                    out.pointee = handles.insert(tensor)
                    return LVD_OK
                } catch {
                    return fail(err, LVD_ERR_INVALID_ARGUMENT, "create: \(error)")
                }
            },
            retain: { tensor, err in
                do { try handles.retain(tensor); return LVD_OK }
                catch { return fail(err, LVD_ERR_RELEASED_HANDLE, "retain: \(error)") }
            },
            release: { tensor, err in
                do { try handles.release(tensor); return LVD_OK }
                catch { return fail(err, LVD_ERR_RELEASED_HANDLE, "release: \(error)") }
            },
            describe: { tensor, dtype, rank, shape, capacity, err in
                let object: Tensor
                do { object = try handles.resolve(tensor) }
                catch { return fail(err, LVD_ERR_RELEASED_HANDLE, "describe: \(error)") }
                dtype?.pointee = object.dtype.rawValue
                rank?.pointee = UInt32(object.shape.count)
                if let shape {
                    guard capacity >= UInt32(object.shape.count) else {
                        return fail(err, LVD_ERR_INVALID_ARGUMENT,
                                    "describe: shape capacity \(capacity) < rank \(object.shape.count)")
                    }
                    for (axis, extent) in object.shape.enumerated() { shape[axis] = Int64(extent) }
                }
                return LVD_OK
            },
            read: { tensor, destination, capacity, err in
                let object: Tensor
                do { object = try handles.resolve(tensor) }
                catch { return fail(err, LVD_ERR_RELEASED_HANDLE, "read: \(error)") }
                let byteCount = object.count * object.dtype.byteSize
                guard capacity >= byteCount else {
                    return fail(err, LVD_ERR_INVALID_ARGUMENT,
                                "read: destination holds \(capacity) bytes, the tensor has \(byteCount)")
                }
                if byteCount == 0 { return LVD_OK }
                guard let destination else { return fail(err, LVD_ERR_INVALID_ARGUMENT, "read: destination is NULL") }
                guard let dense = try? object.denseCopyIfNeeded() else { return fail(err, LVD_ERR_OUT_OF_MEMORY, "read: out of memory") }
                destination.copyMemory(from: dense.storage.bytes + dense.offset * dense.dtype.byteSize, byteCount: byteCount)
                return LVD_OK
            },
            live_count: { Int64(handles.count) },
            op: { name, inputs, inputCount, attributes, out, err in
                guard let name, let out else { return fail(err, LVD_ERR_INVALID_ARGUMENT, "op: NULL name or out") }
                let opName = String(cString: name)
                guard OpRegistry.specs[opName] != nil else {
                    return fail(err, LVD_ERR_NOT_FOUND, "unknown op '\(opName)' (see op_names or docs/tensor-ops.md)")
                }
                guard inputCount == 0 || inputs != nil else { return fail(err, LVD_ERR_INVALID_ARGUMENT, "\(opName): inputs is NULL") }
                var tensors: [Tensor] = []
                for index in 0..<Int(inputCount) {
                    do { tensors.append(try handles.resolve(inputs![index])) }
                    catch { return fail(err, LVD_ERR_RELEASED_HANDLE, "\(opName): input \(index): \(error)") }
                }
                do {
                    let result = try OpRegistry.run(opName, tensors, attributes: attributes.map { String(cString: $0) })
                    out.pointee = handles.insert(result)
                    return LVD_OK
                } catch {
                    return fail(err, status(of: error), "\(error)")
                }
            },
            op_names: { UnsafePointer(opNamesText) },
            set_requires_grad: { tensor, flag, err in
                do { try handles.resolve(tensor).requiresGrad = flag; return LVD_OK }
                catch { return fail(err, LVD_ERR_RELEASED_HANDLE, "set_requires_grad: \(error)") }
            },
            backward: { root, seed, err in
                let rootTensor: Tensor, seedTensor: Tensor?
                do {
                    rootTensor = try handles.resolve(root)
                    seedTensor = try seed.map { handle throws(HandleError) in try handles.resolve(handle) }
                } catch { return fail(err, LVD_ERR_RELEASED_HANDLE, "backward: \(error)") }
                do { try rootTensor.backward(seed: seedTensor); return LVD_OK }
                catch { return fail(err, status(of: error), "\(error)") }
            },
            grad: { tensor, out, err in
                guard let out else { return fail(err, LVD_ERR_INVALID_ARGUMENT, "grad: out is NULL") }
                do {
                    out.pointee = try handles.resolve(tensor).grad.map { handles.insert($0) }
                    return LVD_OK
                } catch { return fail(err, LVD_ERR_RELEASED_HANDLE, "grad: \(error)") }
            },
            zero_grad: { tensor, err in
                do { try handles.resolve(tensor).grad = nil; return LVD_OK }
                catch { return fail(err, LVD_ERR_RELEASED_HANDLE, "zero_grad: \(error)") }
            },
            no_grad_begin: { GradMode.noGradDepth += 1 },
            no_grad_end: { if GradMode.noGradDepth > 0 { GradMode.noGradDepth -= 1 } }
        ))
        return UnsafePointer(table)
    }()
}

/// The op names as the C table hands them out: one static, comma-separated string.
private let opNamesText: UnsafeMutablePointer<CChar> = strdup(OpRegistry.names.joined(separator: ","))!

/// The ABI status for a runtime error.
func status(of error: any Error) -> lvd_status {
    if case TensorError.outOfMemory = error { return LVD_ERR_OUT_OF_MEMORY }
    return LVD_ERR_INVALID_ARGUMENT
}

/// Writes `message` into a caller's `lvd_error` (when present) and returns `status`.
@discardableResult
func fail(_ error: UnsafeMutablePointer<lvd_error>?, _ status: Int32, _ message: String) -> lvd_status {
    lvd_error_set_message(error, status, message)
}
