import Foundation
import LVDFormats

/// A small HTTP server on a loopback port that speaks the OpenAI chat and completion APIs and
/// replays recorded answers: the n-th request for a caption gets its n-th answer. Scripted
/// behaviours (an error status, a delay, a dropped connection, a malformed body) are served
/// first, one per request. Every request is recorded.
final class ReplayServer: @unchecked Sendable {
    enum Behaviour {
        case status(Int, String)
        case delay(Double)
        case drop
        case body(String)
        case bytes([UInt8])
        case answer(String)
    }

    struct Request {
        var path: String
        var headers: [String: String]
        var json: JSONObject?
    }

    let port: UInt16
    var baseURL: String { "http://127.0.0.1:\(port)/v1" }
    private let socket: Int32
    private let lock = NSLock()
    private var answers: [String: [String]]
    private var served: [String: Int] = [:]
    private var script: [Behaviour] = []
    private var log: [Request] = []
    private var thread: Thread?
    private var stopped = false

    init(answers: [String: [String]] = [:]) throws {
        self.answers = answers
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(fd, 64) == 0 else { close(fd); throw NSError(domain: "ReplayServer", code: Int(errno)) }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        port = UInt16(bigEndian: address.sin_port)
        socket = fd
        // The thread keeps the server alive until stop() ends its accept loop.
        let thread = Thread { self.serve() }
        self.thread = thread
        thread.start()
    }

    func stop() {
        lock.withLock { stopped = true }
        shutdown(socket, Int32(SHUT_RDWR))
        close(socket)
    }

    func enqueue(_ behaviours: Behaviour...) { lock.withLock { script += behaviours } }
    var requests: [Request] { lock.withLock { log } }

    private func serve() {
        while true {
            let client = accept(socket, nil, nil)
            if client < 0 {
                if lock.withLock({ stopped }) { return }
                continue
            }
            handle(client)
        }
    }

    private func handle(_ client: Int32) {
        defer { close(client) }
        guard let request = read(client) else { return }
        let behaviour: Behaviour? = lock.withLock {
            log.append(request)
            return script.isEmpty ? nil : script.removeFirst()
        }
        switch behaviour {
        case .status(let status, let body): respond(client, status, body)
        case .delay(let seconds):
            Thread.sleep(forTimeInterval: seconds)
            respond(client, 200, replay(request))
        case .drop: return
        case .body(let body): respond(client, 200, body)
        case .bytes(let bytes): respond(client, 200, bytes)
        case .answer(let text): respond(client, 200, wrap(text, completion: request.path.hasSuffix("/completions") && !request.path.hasSuffix("chat/completions")))
        case nil: respond(client, 200, replay(request))
        }
    }

    /// The next recorded answer for the request's caption, in the API's JSON.
    private func replay(_ request: Request) -> String {
        let completion = !request.path.hasSuffix("/chat/completions")
        var caption = ""
        if completion, let prompt = request.json?["prompt"]?.stringValue, let range = prompt.range(of: "Caption: ", options: .backwards) {
            caption = String(prompt[range.upperBound...]).replacingOccurrences(of: "\nReasoning:", with: "")
        } else if let messages = request.json?["messages"]?.arrayValue,
                  let last = messages.compactMap({ $0.objectValue }).last(where: {
                      $0["role"]?.stringValue == "user" && $0["content"]?.stringValue?.hasPrefix("Caption: ") == true
                  })?["content"]?.stringValue {
            // The last caption asked (a re-ask after a parse error ends with the error, not a caption).
            caption = String(last.dropFirst("Caption: ".count))
        }
        let answer: String? = lock.withLock {
            let index = served[caption, default: 0]
            served[caption] = index + 1
            guard let list = answers[caption], index < list.count else { return nil }
            return list[index]
        }
        guard let answer else { return #"{"error": {"message": "no recorded answer"}}"# }
        // The completion form opens "Reasoning:" itself; the answer continues after it.
        let text = completion && answer.hasPrefix("Reasoning:") ? String(answer.dropFirst("Reasoning:".count)) : answer
        return wrap(text, completion: completion)
    }

    private func wrap(_ text: String, completion: Bool) -> String {
        let choice: JSONValue = completion ? .object(JSONObject(["text": .string(text)]))
            : .object(JSONObject(["message": .object(JSONObject(["role": .string("assistant"), "content": .string(text)]))]))
        return JSONValue.object(JSONObject(["id": .string("replay"), "choices": .array([choice])])).serialized()
    }

    private func respond(_ client: Int32, _ status: Int, _ body: String) { respond(client, status, Array(body.utf8)) }

    private func respond(_ client: Int32, _ status: Int, _ bytes: [UInt8]) {
        let head = "HTTP/1.1 \(status) Replay\r\nContent-Type: application/json\r\nContent-Length: \(bytes.count)\r\nConnection: close\r\n\r\n"
        let all = Array(head.utf8) + bytes
        var sent = 0
        while sent < all.count {
            let n = all[sent...].withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            sent += n
        }
    }

    /// One request: headers to the blank line, then Content-Length bytes of body.
    private func read(_ client: Int32) -> Request? {
        var data = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65536)
        var headerEnd: Int?
        var contentLength = 0
        while true {
            if let end = headerEnd, data.count >= end + contentLength { break }
            let n = recv(client, &buffer, buffer.count, 0)
            if n <= 0 { return nil }
            data += buffer[0..<n]
            if headerEnd == nil, let range = data.firstRange(of: Array("\r\n\r\n".utf8)) {
                headerEnd = range.upperBound
                let head = String(decoding: data[..<range.lowerBound], as: UTF8.self)
                for line in head.split(separator: "\r\n").dropFirst() where line.lowercased().hasPrefix("content-length:") {
                    contentLength = Int(line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) ?? 0
                }
            }
        }
        let head = String(decoding: data[..<headerEnd!], as: UTF8.self)
        let lines = head.split(separator: "\r\n")
        let path = lines.first?.split(separator: " ").dropFirst().first.map(String.init) ?? ""
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let body = String(decoding: data[headerEnd!...], as: UTF8.self)
        return Request(path: path, headers: headers, json: try? JSONValue.parse(body).objectValue)
    }
}
