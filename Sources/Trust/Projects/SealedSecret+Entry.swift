internal import Sodium

/// A secret as gossiped under `<P>/<NAME>` (kind `secret`): ciphertext only.
///
/// ```
///  tag=7 ‖ ver=1 ‖ u16 length ‖ project (≤ 64) ‖ u16 length ‖ name (≤ 128) ‖ version (u64)
///  ‖ key generation (u32) ‖ u16 length ‖ box: nonce (24) ‖ ciphertext ‖ tag (16) (≤ 65535)
/// ```
extension SealedSecret {
    public static func entryKey(project: String, name: String) -> String { "\(project)/\(name)" }

    public var entryKey: String { SealedSecret.entryKey(project: project, name: name) }

    public var intent: EntryIntent { .put(.secret, entryKey, encoded()) }

    public func encoded() -> [UInt8] {
        var w = EntryWriter(tag: .sealedSecret)
        w.string(project)
        w.string(name)
        w.u64(version)
        w.u32(keyGeneration)
        w.variable(box)
        return w.bytes
    }

    public init(decoding raw: [UInt8]) throws(EntryDecodingError) {
        let what = "sealed secret"
        var r = try EntryReader(raw, tag: .sealedSecret, what: what)
        let project = try r.string("project", max: ProjectName.maxLength)
        let name = try r.string("name", max: 128)
        guard ProjectName.isValid(project), SecretName.isValid(name) else { throw EntryDecodingError(what, "invalid project or secret name") }
        let version = try r.u64("version")
        let generation = try r.u32("key generation")
        let box = try r.variable("box", max: Int(UInt16.max))
        guard box.count >= AEAD.xchacha20Poly1305.nonceLength + AEAD.xchacha20Poly1305.tagLength else {
            throw EntryDecodingError(what, "box of \(box.count) bytes is shorter than a nonce and a tag")
        }
        try r.finish()
        self.init(project: project, name: name, version: version, keyGeneration: generation, box: box)
    }
}
