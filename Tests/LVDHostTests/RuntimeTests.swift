import Foundation
import LVDFormats
import LVDHost
import LVDRuntime
import LVDSDK
import XCTest

/// The shared runtime through its C table, as a plugin sees it.
final class RuntimeTests: XCTestCase {
    let api = TensorAPI.table.pointee

    func testCreateDescribeReadRelease() throws {
        var error = lvd_error()
        lvd_error_init(&error)
        let values: [Float] = [1, 2, 3, 4, 5, 6]
        let shape: [Int64] = [2, 3]
        var tensor: OpaquePointer?
        let before = api.live_count()
        XCTAssertEqual(api.create(LVD_DTYPE_F32, 2, shape, values, &tensor, &error), LVD_OK)
        XCTAssertEqual(api.live_count(), before + 1)
        var dtype: lvd_dtype = -1, rank: UInt32 = 0
        var extents = [Int64](repeating: 0, count: 8)
        XCTAssertEqual(api.describe(tensor, &dtype, &rank, &extents, 8, &error), LVD_OK)
        XCTAssertEqual(dtype, LVD_DTYPE_F32)
        XCTAssertEqual(Array(extents.prefix(Int(rank))), [2, 3])
        var back = [Float](repeating: 0, count: 6)
        XCTAssertEqual(api.read(tensor, &back, 24, &error), LVD_OK)
        XCTAssertEqual(back, values)
        XCTAssertEqual(api.read(tensor, &back, 20, &error), LVD_ERR_INVALID_ARGUMENT)
        XCTAssertTrue(error.text.contains("destination holds 20 bytes, the tensor has 24"), error.text)

        XCTAssertEqual(api.retain(tensor, &error), LVD_OK)
        XCTAssertEqual(api.release(tensor, &error), LVD_OK)
        XCTAssertEqual(api.live_count(), before + 1, "one reference left")
        XCTAssertEqual(api.release(tensor, &error), LVD_OK)
        XCTAssertEqual(api.live_count(), before)
    }

    func testReleasedHandleIsAStatusNotACrash() {
        var error = lvd_error()
        lvd_error_init(&error)
        var tensor: OpaquePointer?
        XCTAssertEqual(api.create(LVD_DTYPE_U8, 0, nil, nil, &tensor, &error), LVD_OK)
        XCTAssertEqual(api.release(tensor, &error), LVD_OK)
        for call in [{ self.api.release(tensor, &error) }, { self.api.retain(tensor, &error) },
                     { self.api.describe(tensor, nil, nil, nil, 0, &error) }] {
            lvd_error_init(&error)
            XCTAssertEqual(call(), LVD_ERR_RELEASED_HANDLE)
            XCTAssertTrue(error.text.contains("was released or never created"), error.text)
        }
        XCTAssertEqual(api.describe(nil, nil, nil, nil, 0, &error), LVD_ERR_RELEASED_HANDLE)
        XCTAssertTrue(error.text.contains("tensor handle is NULL"))
    }

    func testCreateRejectsBadArguments() {
        var error = lvd_error()
        lvd_error_init(&error)
        var tensor: OpaquePointer?
        XCTAssertEqual(api.create(99, 1, [1], nil, &tensor, &error), LVD_ERR_INVALID_ARGUMENT)
        XCTAssertTrue(error.text.contains("unknown dtype 99"))
        XCTAssertEqual(api.create(LVD_DTYPE_F32, 9, [Int64](repeating: 1, count: 9), nil, &tensor, &error), LVD_ERR_INVALID_ARGUMENT)
        XCTAssertTrue(error.text.contains("rank 9 exceeds 8"))
        XCTAssertEqual(api.create(LVD_DTYPE_F32, 2, [2, -1], [Float](repeating: 0, count: 4), &tensor, &error), LVD_ERR_INVALID_ARGUMENT)
        XCTAssertTrue(error.text.contains("extent -1 of axis 1 is negative"), error.text)
        XCTAssertNil(tensor, "out untouched on failure")
    }

    func testErrorMessagesAreTruncatedOnACharacterBoundary() {
        var error = lvd_error()
        lvd_error_init(&error)
        let long = String(repeating: "é", count: 600) // 1200 bytes
        XCTAssertEqual(lvd_error_set_message(&error, LVD_ERR_IO, long), LVD_ERR_IO)
        let text = error.text
        XCTAssertEqual(text.utf8.count, 1022, "511 whole characters fit in 1023 bytes")
        XCTAssertEqual(text, String(repeating: "é", count: 511))
        // A caller built with a smaller lvd_error (older SDK) is respected.
        lvd_error_init(&error)
        error.struct_size = UInt32(MemoryLayout<lvd_error>.offset(of: \lvd_error.message)! + 4)
        lvd_error_set_message(&error, LVD_ERR_IO, "abcdef")
        XCTAssertEqual(error.text, "abc")
    }

    func testHostAndPluginsLinkOneSharedRuntime() throws {
        let readelf = try runProcess("/usr/bin/env", ["readelf", "-d", TestPaths.lvd])
        XCTAssertTrue(readelf.stdout.contains("Shared library: [libLVDRuntime.so]"), readelf.stdout)
        // This test process links the runtime too; the C plugin's tensor round trip in the CLI tests
        // runs through the host's copy. Exactly one libLVDRuntime.so is mapped here.
        // procfs reports size 0, so read to the end rather than by size.
        let maps = String(decoding: try XCTUnwrap(FileHandle(forReadingAtPath: "/proc/self/maps")).readDataToEndOfFile(), as: UTF8.self)
        let paths = Set(maps.split(separator: "\n").compactMap { line -> Substring? in
            guard let slash = line.firstIndex(of: "/"), line.hasSuffix("libLVDRuntime.so") else { return nil }
            return line[slash...]
        })
        XCTAssertEqual(paths.count, 1, "\(paths)")
    }
}

/// The headers compile as C11 and C++ with every warning an error, and the inline helpers work.
final class HeaderTests: XCTestCase {
    func testHeadersCompileAsC11AndCxx() throws {
        let temp = try TempDir()
        try temp.write("check.c", """
        #include <lvd/lvd.h>
        #include <lvd/params_jsonc.h>
        int main(void) {
            lvd_error e;
            lvd_error_init(&e);
            lvd_error_set(&e, LVD_ERR_PARSE, "bad %s at %d", "token", 7);
            lvd_host host;
            memset(&host, 0, sizeof host);
            host.struct_size = sizeof host;
            return (strcmp(e.message, "bad token at 7") == 0 && e.status == LVD_ERR_PARSE
                    && LVD_HAS_FIELD(&host, lvd_host, get_extension)
                    && strcmp(lvd_status_name(LVD_ERR_ABI), "abi") == 0) ? 0 : 1;
        }
        """)
        try FileManager.default.copyItem(atPath: temp.file("check.c"), toPath: temp.file("check.cpp"))
        let compilers: [(String, [String], String)] = [
            ("cc", ["-std=c11"], "check.c"), ("cc", ["-std=c17"], "check.c"),
            ("c++", ["-std=c++11"], "check.cpp"), ("c++", ["-std=c++17"], "check.cpp"),
        ]
        for (compiler, flags, source) in compilers {
            let output = temp.file("check-\(compiler)-\(flags[0])")
            let build = try runProcess("/usr/bin/env", [compiler] + flags + ["-Wall", "-Wextra", "-Werror", "-pedantic",
                                                                           "-I", TestPaths.sdkInclude, temp.file(source), "-ljson-c", "-o", output])
            XCTAssertEqual(build.status, 0, "\(compiler) \(flags): \(build.output)")
            guard build.status == 0 else { continue }
            XCTAssertEqual(try runProcess(output, []).status, 0, "\(compiler) \(flags): helpers misbehave")
        }
    }

    func testEveryFunctionPointerIsDocumented() throws {
        // Each function of the ABI carries a comment saying its thread rule or failure value.
        for header in ["host.h", "plugin.h", "planner.h", "method.h", "tensor.h"] {
            let text = try String(contentsOfFile: TestPaths.sdkInclude + "/lvd/" + header, encoding: .utf8)
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
            for (index, line) in lines.enumerated() where line.contains("(*") {
                let before = lines[max(0, index - 12)..<index].joined(separator: "\n")
                XCTAssertTrue(before.contains("*/"), "\(header): undocumented function: \(line)")
            }
        }
    }
}

/// `lvd bench ops` measures this machine's copy bandwidth in the same run, and the bytes that
/// attention must move at least, so a case bound by memory is judged against the memory.
final class BenchOpsTests: XCTestCase {
    func testCopyBandwidthAndAttentionTraffic() throws {
        var byName: [String: JSONObject] = [:]
        for filter in ["copy", "attention temporal"] {
            let result = try lvd(["bench", "ops", "--json", "--min-seconds", "0", "--filter", filter])
            XCTAssertEqual(result.status, 0, result.output)
            for line in result.stdout.split(separator: "\n") {
                if let row = try? JSONValue.parse(String(line)).objectValue, let name = row["name"]?.stringValue { byName[name] = row }
            }
        }
        let copy = try XCTUnwrap(byName["copy 64 MB"], "\(byName.keys)")
        let seconds = try XCTUnwrap(copy["seconds"]?.numberValue), bandwidth = try XCTUnwrap(copy["gbytes_per_second"]?.numberValue)
        // 64 MB read and 64 MB written in that time.
        XCTAssertEqual(bandwidth, 2 * 64 * 1_048_576 / seconds / 1e9, accuracy: bandwidth * 1e-9)
        XCTAssertGreaterThan(bandwidth, 0.5)
        // Temporal attention: q, k, v and the output, 5120 × 16 × 64 floats each, in its forward time.
        let attention = try XCTUnwrap(byName["attention temporal 16f"])
        let traffic = try XCTUnwrap(attention["gbytes_per_second"]?.numberValue) * XCTUnwrap(attention["seconds"]?.numberValue)
        XCTAssertEqual(traffic, 4 * 4 * 5120 * 16 * 64 / 1e9, accuracy: 1e-9)
        XCTAssertNil(byName["attention temporal 16f bwd"]?["gbytes_per_second"], "only the forward's traffic is counted")
    }

    /// Ctrl-C during the PyTorch side ends the reference Python too (Foundation starts it in its
    /// own process group, where a terminal's Ctrl-C does not reach), and the benchmark with 130.
    func testCtrlCEndsTheReferencePython() throws {
        let temp = try TempDir()
        // A stand-in for python: notes its pid, then waits far longer than the test.
        let fake = temp.file("python")
        try "#!/bin/sh\necho $$ > '\(temp.file("pid"))'\nexec sleep 300\n".write(toFile: fake, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: fake)
        let process = lvdProcess(["bench", "ops", "--reference", fake, "--filter", "copy"])
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(60)
        func pid() -> pid_t? { (try? String(contentsOfFile: temp.file("pid"), encoding: .utf8)).flatMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) } }
        while pid() == nil && Date() < deadline { usleep(20_000) }
        let python = try XCTUnwrap(pid(), "the reference started")
        usleep(100_000)
        process.interrupt()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 130)
        // Gone, or a zombie waiting for whoever reaps orphans here.
        func alive() -> Bool {
            guard let stat = try? String(contentsOfFile: "/proc/\(python)/stat", encoding: .utf8) else { return false }
            return stat.components(separatedBy: ") ").last?.first != "Z"
        }
        while alive() && Date() < deadline { usleep(20_000) }
        XCTAssertFalse(alive(), "the reference is gone")
    }
}
