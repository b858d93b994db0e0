#if canImport(Glibc)
import Glibc
#endif

/// dstack's configurations start apps with `python` (`python -m http.server 8000`), which Debian
/// and Ubuntu no longer install: they have `python3` only. So that such files run as written, a
/// run's PATH ends with a directory whose `python` links to the `python3` found on that PATH, made
/// only when the PATH has `python3` and no `python`. Being last, it never hides a real `python`.
enum PythonFallback {
    /// Makes (or refreshes) `directory/python` → the first `python3` on `path`, when `path` has no
    /// `python`, and returns `path` with `directory` appended; otherwise returns `path` unchanged.
    static func path(_ path: String, fallbackDirectory directory: String) -> String {
        let entries = path.split(separator: ":", omittingEmptySubsequences: true).map(String.init)
        guard executable(named: "python", in: entries) == nil,
              let python3 = executable(named: "python3", in: entries.filter { $0.hasPrefix("/") })
        else { return path }
        let link = directory + "/python"
        var target = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let length = readlink(link, &target, target.count - 1)
        let current = length > 0 ? String(decoding: target[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self) : nil
        if current != python3 {
            do { try PrivateFiles.ensureDirectory(directory) } catch { return path }
            unlink(link)
            guard symlink(python3, link) == 0 else { return path }
        }
        return path.isEmpty ? directory : path + ":" + directory
    }

    /// The first executable file named `name` in the PATH entries.
    private static func executable(named name: String, in entries: [String]) -> String? {
        for entry in entries {
            let candidate = entry + "/" + name
            var info = stat()
            if stat(candidate, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, access(candidate, X_OK) == 0 {
                return candidate
            }
        }
        return nil
    }
}
