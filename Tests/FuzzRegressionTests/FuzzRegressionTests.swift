import Foundation
@testable import FuzzTargets
import Testing

/// Every saved fuzz input, fed to the same check the fuzzer runs: the seed corpus (real messages,
/// Fuzz/corpus/TARGET/) and every input that ever broke a target (Fuzz/crashes/TARGET/). A crash
/// here is a regression of a fixed finding.
struct FuzzRegressionTests {
    static let fuzzRoot: URL = {
        var root = URL(fileURLWithPath: #filePath)
        while root.path != "/" && !FileManager.default.fileExists(atPath: root.appendingPathComponent("Package.swift").path) {
            root.deleteLastPathComponent()
        }
        return root.appendingPathComponent("Fuzz")
    }()

    static func inputs(_ folder: String, _ target: String) -> [URL] {
        let dir = fuzzRoot.appendingPathComponent(folder).appendingPathComponent(target)
        return ((try? FileManager.default.contentsOfDirectory(at: dir, includingPropertiesForKeys: nil)) ?? [])
            .filter { !$0.lastPathComponent.hasPrefix(".") }
            .sorted { $0.path < $1.path }
    }

    static let targetNames = FuzzTarget.all.map(\.name)

    @Test(arguments: targetNames)
    func seedCorpusPasses(_ name: String) throws {
        let target = try #require(FuzzTarget.named(name))
        let seeds = Self.inputs("corpus", name)
        #expect(seeds.count >= 3, "Fuzz/corpus/\(name) holds \(seeds.count) seeds; run scripts/fuzz.sh --seeds to make them")
        for file in seeds {
            #expect(throws: Never.self, "\(name) seed \(file.lastPathComponent)") { try target.check(Array(try Data(contentsOf: file))) }
        }
    }

    @Test(arguments: targetNames)
    func pastCrashesStayFixed(_ name: String) throws {
        let target = try #require(FuzzTarget.named(name))
        for file in Self.inputs("crashes", name) {
            #expect(throws: Never.self, "\(name) crash input \(file.lastPathComponent)") { try target.check(Array(try Data(contentsOf: file))) }
        }
    }

    @Test func everyCrashFolderNamesATarget() {
        let folders = (try? FileManager.default.contentsOfDirectory(atPath: Self.fuzzRoot.appendingPathComponent("crashes").path)) ?? []
        for folder in folders where !folder.hasPrefix(".") {
            #expect(Self.targetNames.contains(folder), "Fuzz/crashes/\(folder) is not a fuzz target: \(Self.targetNames)")
        }
    }

    /// A property that is broken is reported, not passed: a check must be able to fail.
    @Test func aBrokenPropertyIsReported() {
        #expect(throws: FuzzFailure.self) { try expect(false, "broken") }
    }
}
