import CCurl
import Foundation

/// One JSON POST over libcurl with connect and total timeouts. Never logs the key.
struct HTTPClient {
    struct Response {
        var status: Int
        var body: Data
    }

    struct Failure: Error, CustomStringConvertible {
        var url: String
        /// What went wrong, without the URL.
        var reason: String
        /// Worth another try (connection problems, timeouts).
        var transient: Bool
        var description: String { "\(url): \(reason)" }
    }

    var connectTimeout: Int = 10
    var timeout: Int

    static let initialized: Bool = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK }()

    func post(_ url: String, json body: Data, headers: [String]) throws -> Response {
        _ = Self.initialized
        guard let curl = curl_easy_init() else { throw Failure(url: url, reason: "cannot start libcurl", transient: false) }
        defer { curl_easy_cleanup(curl) }
        var list: UnsafeMutablePointer<curl_slist>?
        for header in headers + ["Content-Type: application/json", "Expect:"] { list = curl_slist_append(list, header) }
        defer { curl_slist_free_all(list) }
        final class Sink { var data = Data() }
        let sink = Sink()
        let sinkPointer = Unmanaged.passUnretained(sink).toOpaque()
        let write: curl_write_callback = { buffer, size, count, context in
            let sink = Unmanaged<Sink>.fromOpaque(context!).takeUnretainedValue()
            let bytes = size * count
            // Refuse absurd answers instead of exhausting memory (the caller reports it).
            if sink.data.count + bytes > 64 << 20 { return 0 }
            if let buffer { sink.data.append(UnsafeRawPointer(buffer).assumingMemoryBound(to: UInt8.self), count: bytes) }
            return bytes
        }
        let code: CURLcode = url.withCString { urlPointer in
            body.withUnsafeBytes { bodyBytes in
                _ = lvd_curl_set_pointer(curl, CURLOPT_URL, urlPointer)
                _ = lvd_curl_set_long(curl, CURLOPT_POST, 1)
                _ = lvd_curl_set_pointer(curl, CURLOPT_POSTFIELDS, bodyBytes.baseAddress)
                _ = lvd_curl_set_long(curl, CURLOPT_POSTFIELDSIZE, bodyBytes.count)
                _ = lvd_curl_set_pointer(curl, CURLOPT_HTTPHEADER, list)
                _ = lvd_curl_set_pointer(curl, CURLOPT_WRITEFUNCTION, unsafeBitCast(write, to: UnsafeRawPointer.self))
                _ = lvd_curl_set_pointer(curl, CURLOPT_WRITEDATA, sinkPointer)
                _ = lvd_curl_set_long(curl, CURLOPT_CONNECTTIMEOUT, connectTimeout)
                _ = lvd_curl_set_long(curl, CURLOPT_TIMEOUT, timeout)
                _ = lvd_curl_set_long(curl, CURLOPT_NOSIGNAL, 1)
                _ = lvd_curl_set_long(curl, CURLOPT_FOLLOWLOCATION, 1)
                return curl_easy_perform(curl)
            }
        }
        guard code == CURLE_OK else {
            let reason = String(cString: curl_easy_strerror(code))
            let transient = [CURLE_COULDNT_CONNECT, CURLE_OPERATION_TIMEDOUT, CURLE_GOT_NOTHING, CURLE_RECV_ERROR,
                             CURLE_SEND_ERROR, CURLE_PARTIAL_FILE, CURLE_COULDNT_RESOLVE_HOST].contains(code)
            if code == CURLE_WRITE_ERROR { throw Failure(url: url, reason: "answer larger than 64 MiB", transient: false) }
            throw Failure(url: url, reason: reason, transient: transient)
        }
        var status = 0
        _ = lvd_curl_get_long(curl, CURLINFO_RESPONSE_CODE, &status)
        return Response(status: status, body: sink.data)
    }
}
