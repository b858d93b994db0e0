import Foundation
import Gossip
@testable import MeshNode
@testable import Link
@testable import Trust
import NIOCore
import Sodium

/// Seed inputs made from real messages: what Warren's own code writes, framed as each target
/// reads its input (control bytes first). `scripts/fuzz.sh --seeds` saves them in Fuzz/corpus.
public enum SeedCorpus {
    /// Writes every seed to `folder/TARGET/NAME`; returns how many.
    public static func write(into folder: String) throws -> Int {
        var count = 0
        for (target, seeds) in try make() {
            let dir = URL(fileURLWithPath: folder).appendingPathComponent(target)
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            for (name, bytes) in seeds {
                try Data(bytes).write(to: dir.appendingPathComponent(name))
                count += 1
            }
        }
        return count
    }

    public static func make() throws -> [String: [(String, [UInt8])]] {
        var seeds: [String: [(String, [UInt8])]] = [:]

        // link-handshake: a real initiator's preamble and message 1; a real identity payload.
        for suite in LinkSuite.allCases {
            var initiator = LinkHandshake(role: .initiator(suite: suite, expecting: nil), identity: FuzzKeys.peer, meshID: FuzzKeys.meshID)
            guard case .send(let first) = try initiator.start().first else { continue }
            seeds["link-handshake", default: []].append(("message1-\(suite)", [0, 255] + first))
            seeds["link-handshake", default: []].append(("message1-split-\(suite)", [0, 2] + first))
        }
        seeds["link-handshake", default: []].append(("message2-identity", [2, 255, LinkProtocol.version] + FuzzKeys.peer.id.bytes))
        var twin = FuzzKeys.peer.id.bytes
        twin[31] ^= 0x80
        seeds["link-handshake", default: []].append(("message2-twin", [2, 255, LinkProtocol.version] + twin))
        seeds["link-handshake", default: []].append(("message2-raw", [1, 255, 0, 48] + [UInt8](repeating: 9, count: 48)))

        // link-records: plaintext sealed and opened; a real sealed record as raw bytes.
        let text = Array("GET / HTTP/1.1\r\nHost: app.example.com\r\n\r\n".utf8)
        seeds["link-records"] = [
            ("roundtrip-chacha", [1, 3, 2, 0] + text),
            ("roundtrip-aes-flip", [3, 0, 1, 5] + text),
            ("roundtrip-big", [1, 255, 255, 0] + [UInt8](repeating: 0x41, count: 4096)),
            ("raw", [0, 16, 0, 0, 0, 20] + [UInt8](repeating: 1, count: 20)),
        ]

        // gossip-datagram: messages the SWIM layer sends, through the codec and through a sealer.
        let member = Member(id: FuzzKeys.local.id, address: "127.0.0.1:7946", metadata: [1, 2], incarnation: 3, state: .alive)
        let ping = Message.ping(seq: 7, target: FuzzKeys.peer.id, updates: [.alive(member), .suspect(node: FuzzKeys.peer.id, incarnation: 2, from: FuzzKeys.local.id)])
        let entries = try meshEntries()
        let gossip = Message.gossip(updates: entries.prefix(3).map { .entry($0) })
        let pushPull = Message.pushPull(PushPull(isReply: true, isJoin: false, members: [member], entries: entries))
        var datagrams: [(String, [UInt8])] = []
        for (name, message) in [("ping", ping), ("gossip", gossip), ("push-pull", pushPull), ("nack", Message.nack(seq: 1)),
                                ("indirect-ping", .indirectPing(seq: 2, target: FuzzKeys.peer.id, targetAddress: "10.0.0.2:7946", updates: []))] {
            let bytes = MessageCodec.encode(message)
            datagrams.append(("codec-\(name)", [2] + bytes))
            datagrams.append(("sealed-\(name)", [1] + bytes))
        }
        var sender = DatagramSealer(localID: FuzzKeys.peer.id, x25519SecretKey: FuzzKeys.peer.staticKey.secretKey)
        datagrams.append(("raw-sealed", [0] + (try sender.seal(MessageCodec.encode(ping), to: FuzzKeys.local.id, nowMilliseconds: 1_700_000_000_000))))
        seeds["gossip-datagram"] = datagrams

        // entry-codec and invite-token: a founded mesh, an invite, a project.
        let founder = try Ed25519.KeyPair.fromSeed([UInt8](repeating: 1, count: 32))
        let now = Date(timeIntervalSince1970: 1_700_000_000)
        let (roster, founding) = try MeshRoster.found(addresses: ["127.0.0.1:7946"], at: now, keys: founder)
        let token = try roster.issueInvite(role: .runner, ttl: 600, now: now, inviterKeys: founder, addresses: ["gw.example.com:7946"])
        let project = try ProjectBook(entries: []).createProject("web", local: LocalMember(identity: founder), now: now)
        var entrySeeds: [(String, [UInt8])] = []
        for (i, intent) in (founding + project).enumerated() {
            guard let value = intent.value else { continue }
            let key = Array(intent.key.utf8.prefix(95))
            let selector = UInt8(EntryKind.meshKinds.firstIndex(of: intent.kind)!)
            entrySeeds.append(("\(intent.kind.name)-\(i)", [selector, UInt8(key.count)] + key + value))
        }
        entrySeeds.append(("invite-token", [0, 0] + token.bytes))
        seeds["entry-codec"] = entrySeeds
        seeds["invite-token"] = [
            ("token", Array(token.encoded.utf8)),
            ("token-newline", Array(("  " + token.encoded + "\n").utf8)),
            ("no-addresses", Array(try roster.issueInvite(role: .admin, ttl: 60, now: now, inviterKeys: founder, addresses: []).encoded.utf8)),
        ]

        // http-head and local-api: requests as browsers, curl and the CLI send them.
        seeds["http-head"] = [
            ("get", [255] + Array("GET / HTTP/1.1\r\nHost: app.example.com\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n".utf8)),
            ("post-chunked", [7] + Array("POST /api HTTP/1.1\r\nHost: API.Example.com.:443\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n".utf8)),
            ("websocket", [255] + Array("GET /ws HTTP/1.1\r\nHost: [::1]:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".utf8)),
            ("pipelined", [255] + Array("GET /a HTTP/1.1\r\nHost: unknown.example\r\n\r\nHEAD /b HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n".utf8)),
        ]
        // exclusive-http: what clients send to an exclusive HTTP port, and what apps answer.
        seeds["exclusive-http"] = [
            ("pipelined", [6] + Array(("GET /a HTTP/1.1\r\nHost: app.example\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n"
                + "POST /b HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
                + "PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nTrailer: x\r\n\r\n"
                + "HEAD /d HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").utf8)),
            ("upgrade", [255] + Array("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\u{81}\u{02}hi".utf8)),
            ("smuggle", [3] + Array("POST / HTTP/1.1\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /x HTTP/1.1\r\n\r\n".utf8)),
            ("responses", [9] + Array(("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n"
                + "Transfer-Encoding: chunked\r\n\r\nHTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n").utf8)),
        ]
        let run = try JSONEncoder().encode(RunRequest(project: "web", configuration: "type: service\nname: web\ncommands: [python3 -m http.server]\nport: 8000\n",
                                                      configurationPath: ".dstack.yml", directory: "/srv/web", environment: ["HOME": "/root"]))
        let secret = try JSONEncoder().encode(SecretAddRequest(name: "TOKEN", value: "s3cret"))
        func post(_ path: String, _ body: Data) -> [UInt8] {
            Array("POST \(path) HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + Array(body)
        }
        seeds["local-api"] = [
            ("runs", [255] + post("/v1/projects/web/runs", run)),
            ("secret", [255] + post("/v1/projects/web/secrets?name=TOKEN&x=a+b%20c", secret)),
            ("get-node", [255] + Array("GET /v1/node HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n\r\nDELETE /v1/runs/abc HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".utf8)),
        ]

        // client-hello: a hand-built ClientHello with SNI, split over two records, and without.
        seeds["client-hello"] = [
            ("sni", [255] + handBuiltClientHello(serverName: "App.Example.com.", split: nil)),
            ("sni-two-records", [128] + handBuiltClientHello(serverName: "app.example.com", split: 20)),
            ("no-sni", [255] + handBuiltClientHello(serverName: nil, split: nil)),
        ]

        // service-yaml: the example service files of the repository.
        let examples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("examples")
        for file in ((try? FileManager.default.contentsOfDirectory(at: examples, includingPropertiesForKeys: nil)) ?? []) where file.pathExtension == "yml" {
            seeds["service-yaml", default: []].append((file.deletingPathExtension().lastPathComponent, Array(try Data(contentsOf: file))))
        }
        return seeds
    }

    /// Signed entries as a mesh gossips them.
    static func meshEntries() throws -> [Entry] {
        let keys = try Ed25519.KeyPair.fromSeed([UInt8](repeating: 1, count: 32))
        let (_, founding) = try MeshRoster.found(addresses: ["127.0.0.1:7946"], at: Date(timeIntervalSince1970: 1_700_000_000), keys: keys)
        return founding.enumerated().map { i, intent in
            Entry(kind: intent.kind, key: intent.key, value: intent.value,
                  timestamp: HLCTimestamp(wallMillis: 1_700_000_000_000 + UInt64(i), logical: 0), author: FuzzKeys.local.id, signature: [UInt8](repeating: 5, count: 64))
        }
    }

    static func handBuiltClientHello(serverName: String?, split: Int?) -> [UInt8] {
        var extensions: [UInt8] = []
        func u16(_ v: Int) -> [UInt8] { [UInt8(v >> 8 & 0xff), UInt8(v & 0xff)] }
        if let serverName {
            let name = Array(serverName.utf8)
            extensions += u16(0) + u16(name.count + 5) + u16(name.count + 3) + [0] + u16(name.count) + name
        }
        extensions += [0x00, 0x0b, 0x00, 0x02, 0x01, 0x00]
        let body: [UInt8] = [3, 3] + [UInt8](repeating: 7, count: 32) + [0] + u16(2) + [0x13, 0x01] + [1, 0] + u16(extensions.count) + extensions
        let handshake: [UInt8] = [1, 0] + u16(body.count) + body
        let fragments = split.map { [Array(handshake[..<$0]), Array(handshake[$0...])] } ?? [handshake]
        return fragments.flatMap { [22, 3, 1] + u16($0.count) + $0 }
    }
}
