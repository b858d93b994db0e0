import FuzzTargets
#if canImport(Glibc)
import Glibc
#endif

/// libFuzzer's entry points. One binary holds every target; FUZZ_TARGET picks the one to run, so
/// scripts/fuzz.sh links once and each target keeps its own corpus, dictionary and figures.
nonisolated(unsafe) private var selected: FuzzTarget?

@_silgen_name("LLVMFuzzerRunDriver")
private func runDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

/// SwiftPM links an executable's `main` to `<module>_main` (so tests can link executables); this is
/// it, and it hands over to libFuzzer's driver with the target FUZZ_TARGET names.
@_cdecl("warren_fuzz_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    if let folder = getenv("WARREN_FUZZ_WRITE_SEEDS").map({ String(cString: $0) }) {
        do {
            let count = try SeedCorpus.write(into: folder)
            print("warren-fuzz: wrote \(count) seed inputs under \(folder)")
            return 0
        } catch {
            print("warren-fuzz: writing the seed corpus under \(folder) failed: \(error)")
            return 1
        }
    }
    let name = getenv("FUZZ_TARGET").map { String(cString: $0) } ?? ""
    guard let target = FuzzTarget.named(name) else {
        let names = FuzzTarget.all.map(\.name).joined(separator: ", ")
        let message = "warren-fuzz: FUZZ_TARGET=\"\(name)\" is not a fuzz target; set it to one of: \(names)\n"
        _ = message.withCString { write(2, $0, strlen($0)) }
        return 2
    }
    selected = target
    var count = argc
    var arguments = argv
    return runDriver(&count, &arguments, fuzzerTestOneInput)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let target = selected else { return 0 }
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    do {
        try target.check(bytes)
    } catch {
        // A broken property is a finding: crash, so libFuzzer saves the input.
        fatalError("fuzz target \(target.name): \(error)")
    }
    return 0
}
