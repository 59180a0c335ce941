import Foundation

/// Text files for a character-level model: globs expanded in sorted order, UTF-8 checked, the
/// characters (Unicode scalars) concatenated.
public enum TextFiles {
    /// Files matching `patterns` (plain paths or globs with `*`, `?`, `**`), sorted, without repeats.
    /// A pattern that matches nothing is an error naming it.
    public static func expand(_ patterns: [String], key: String = "data.paths") throws -> [String] {
        var found: [String] = []
        var seen = Set<String>()
        for pattern in patterns {
            let matches = try glob(pattern, key: key)
            guard !matches.isEmpty else {
                throw SeqTrainError("\(key): \"\(pattern)\" matches no file (paths are relative to \(FileManager.default.currentDirectoryPath))")
            }
            for m in matches where seen.insert(m).inserted { found.append(m) }
        }
        return found
    }

    static func glob(_ pattern: String, key: String = "data.paths") throws -> [String] {
        let fm = FileManager.default
        guard pattern.contains(where: { "*?[".contains($0) }) else {
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: pattern, isDirectory: &isDirectory) else { return [] }
            if isDirectory.boolValue {
                throw SeqTrainError("\(key): \"\(pattern)\" is a directory; "
                    + "name files or a glob like \"\(pattern)/**/*.txt\"")
            }
            return [pattern]
        }
        // The fixed directory before the first wildcard is walked; the rest is matched as a regex.
        let parts = pattern.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        let isWild = { (part: String) in part.contains(where: { "*?[".contains($0) }) }
        guard let fixedCount = parts.firstIndex(where: isWild) else { return [] }
        let root = parts[..<fixedCount].joined(separator: "/")
        let base = root.isEmpty ? (pattern.hasPrefix("/") ? "/" : ".") : root
        let regex = try NSRegularExpression(pattern: "^" + globRegex(parts[fixedCount...].joined(separator: "/")) + "$")
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: base, isDirectory: &isDirectory), isDirectory.boolValue else { return [] }
        let prefix = root.isEmpty ? (pattern.hasPrefix("/") ? "/" : "") : root + "/"
        // Without `**` a match is exactly as deep as the pattern: deeper folders are not opened.
        let wildParts = parts[fixedCount...]
        let depth = wildParts.contains { $0.contains("**") } ? Int.max : wildParts.count
        var out: [String] = []
        try walk(base, relative: "", depth: depth) { relative in
            let range = NSRange(relative.startIndex..., in: relative)
            guard regex.firstMatch(in: relative, range: range) != nil else { return }
            out.append(prefix + relative)
        } unreadable: { folder, reason in
            throw SeqTrainError("\(key): \"\(pattern)\" searches \(folder), which cannot be read (\(reason)); "
                + "make it readable (chmod) or narrow the pattern so it does not reach that folder")
        }
        return out.sorted()
    }

    /// Calls `file` with the path (relative to `base`) of every regular file or link to one below
    /// `base`, at most `depth` path components down; does not follow links to folders. A folder it
    /// cannot list goes to `unreadable`, where FileManager's enumerator would skip it without a word.
    static func walk(_ base: String, relative: String, depth: Int, file: (String) throws -> Void,
                     unreadable: (String, String) throws -> Void) throws {
        let folder = relative.isEmpty ? base : (base == "/" ? "/" : base + "/") + relative
        guard let directory = opendir(folder) else {
            try unreadable(folder, String(cString: strerror(errno)))
            return
        }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) {
                String(cString: $0.bindMemory(to: CChar.self).baseAddress!)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        closedir(directory)
        for name in names.sorted() {
            let child = relative.isEmpty ? name : relative + "/" + name
            let full = (folder == "/" ? "" : folder) + "/" + name
            var status = stat()
            guard lstat(full, &status) == 0 else { continue }
            switch status.st_mode & S_IFMT {
            case S_IFDIR where depth > 1:
                try walk(base, relative: child, depth: depth - 1, file: file, unreadable: unreadable)
            case S_IFREG: try file(child)
            case S_IFLNK:
                var target = stat()
                if stat(full, &target) == 0, target.st_mode & S_IFMT == S_IFREG { try file(child) }
            default: continue
            }
        }
    }

    static func globRegex(_ glob: String) -> String {
        var out = ""
        var chars = Array(glob)[...]
        while let c = chars.popFirst() {
            switch c {
            case "*":
                if chars.first == "*" {
                    chars.removeFirst()
                    if chars.first == "/" { chars.removeFirst(); out += "(?:.*/)?" } else { out += ".*" }
                } else {
                    out += "[^/]*"
                }
            case "?": out += "[^/]"
            default: out += NSRegularExpression.escapedPattern(for: String(c))
            }
        }
        return out
    }

    /// The file's characters; invalid UTF-8 is an error naming the file and the byte offset.
    public static func readUTF8(_ path: String) throws -> [Unicode.Scalar] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SeqTrainError("\(path): cannot read the file: \(unreadableReason(path))")
        }
        var scalars: [Unicode.Scalar] = []
        scalars.reserveCapacity(data.count)
        var decoder = UTF8()
        var iterator = data.makeIterator()
        var offset = 0
        var consumed = 0
        loop: while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let s):
                scalars.append(s)
                consumed += UTF8.width(s)
                offset = consumed
            case .emptyInput: break loop
            case .error:
                throw SeqTrainError("\(path): invalid UTF-8 at byte offset \(offset); convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8)")
            }
        }
        return scalars
    }
}

/// The characters a model knows, in a fixed order: id i is `characters[i]`.
public struct Vocabulary: Equatable {
    public let characters: [Unicode.Scalar]
    private let index: [Unicode.Scalar: Int32]

    /// The given characters in order; `source` names where they came from when one repeats.
    public init(_ characters: [Unicode.Scalar], source: String) throws {
        var index: [Unicode.Scalar: Int32] = [:]
        for (position, character) in characters.enumerated() {
            if let earlier = index[character] {
                let shown = character.properties.isWhitespace || character.value < 0x20 ? "U+\(String(character.value, radix: 16, uppercase: true))" : "\"\(character)\""
                throw SeqTrainError("\(source): the vocabulary lists the character \(shown) twice (at \(earlier) and \(position)); each character may appear once")
            }
            guard position < Int(Int32.max) else { throw SeqTrainError("\(source): the vocabulary has more than \(Int32.max) characters") }
            index[character] = Int32(position)
        }
        self.characters = characters
        self.index = index
    }

    /// Every distinct character of `text`, sorted by code point.
    public init(building text: [Unicode.Scalar]) {
        let characters = Array(Set(text)).sorted { $0.value < $1.value }
        self.characters = characters
        index = Dictionary(uniqueKeysWithValues: characters.enumerated().map { ($1, Int32($0)) })
    }

    public var count: Int { characters.count }
    public func id(_ c: Unicode.Scalar) -> Int32? { index[c] }

    /// Ids of `text`; characters outside the vocabulary are skipped (counted in `skipped`) or,
    /// with `strict`, an error naming them and `source`.
    public func encode(_ text: [Unicode.Scalar], strict: Bool, source: String) throws -> (ids: [Int32], skipped: Int) {
        var ids: [Int32] = []
        ids.reserveCapacity(text.count)
        var unknown: [Unicode.Scalar: Int] = [:]
        for c in text {
            if let i = index[c] { ids.append(i) } else { unknown[c, default: 0] += 1 }
        }
        if strict && !unknown.isEmpty {
            let shown = unknown.keys.sorted { $0.value < $1.value }.prefix(10).map { "U+\(String($0.value, radix: 16, uppercase: true))" }
            throw SeqTrainError("\(source): \(unknown.values.reduce(0, +)) characters are not in the model's vocabulary (\(shown.joined(separator: ", "))); set data.unknown = \"skip\" to leave them out")
        }
        return (ids, unknown.values.reduce(0, +))
    }

    /// The warning for the `skipped` characters of `source` that `encode` left out, or nil for none.
    public static func skippedWarning(_ skipped: Int, source: String) -> String? {
        guard skipped > 0 else { return nil }
        return "\(source): \(skipped) character(s) not in the model's vocabulary were skipped "
            + "(data.unknown = \"skip\"); set data.unknown = \"error\" to refuse them instead"
    }

    public func decode(_ ids: [Int32]) -> String {
        var s = String.UnicodeScalarView()
        for i in ids { s.append(characters[Int(i)]) }
        return String(s)
    }

    /// The characters as one string (stored in checkpoints).
    public var text: String { var s = String.UnicodeScalarView(); s.append(contentsOf: characters); return String(s) }
}
