import Foundation

/// Text files for a character-level model: globs expanded in sorted order, UTF-8 checked, the
/// characters (Unicode scalars) concatenated.
public enum TextFiles {
    /// Files matching `patterns` (plain paths or globs with `*`, `?`, `**`), sorted, without repeats.
    /// A pattern that matches nothing is an error naming it.
    public static func expand(_ patterns: [String], key: String = "data.paths") throws -> [String] {
        var found: [String] = []
        for pattern in patterns {
            let matches = try glob(pattern)
            guard !matches.isEmpty else {
                throw SeqTrainError("\(key): \"\(pattern)\" matches no file (paths are relative to \(FileManager.default.currentDirectoryPath))")
            }
            for m in matches where !found.contains(m) { found.append(m) }
        }
        return found
    }

    static func glob(_ pattern: String) throws -> [String] {
        let fm = FileManager.default
        guard pattern.contains(where: { "*?[".contains($0) }) else {
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: pattern, isDirectory: &isDirectory) else { return [] }
            if isDirectory.boolValue { throw SeqTrainError("data.paths: \"\(pattern)\" is a directory; name files or a glob like \"\(pattern)/**/*.txt\"") }
            return [pattern]
        }
        // The fixed directory before the first wildcard is walked; the rest is matched as a regex.
        let parts = pattern.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        let fixedCount = parts.firstIndex { $0.contains(where: { "*?[".contains($0) }) }!
        let root = parts[..<fixedCount].joined(separator: "/")
        let base = root.isEmpty ? (pattern.hasPrefix("/") ? "/" : ".") : root
        let regex = try NSRegularExpression(pattern: "^" + globRegex(parts[fixedCount...].joined(separator: "/")) + "$")
        guard let walker = fm.enumerator(atPath: base) else { return [] }
        var out: [String] = []
        while let relative = walker.nextObject() as? String {
            let range = NSRange(relative.startIndex..., in: relative)
            guard regex.firstMatch(in: relative, range: range) != nil else { continue }
            let full = root.isEmpty ? relative : root + "/" + relative
            var isDirectory: ObjCBool = false
            if fm.fileExists(atPath: full, isDirectory: &isDirectory), !isDirectory.boolValue { out.append(full) }
        }
        return out.sorted()
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

    public func decode(_ ids: [Int32]) -> String {
        var s = String.UnicodeScalarView()
        for i in ids { s.append(characters[Int(i)]) }
        return String(s)
    }

    /// The characters as one string (stored in checkpoints).
    public var text: String { var s = String.UnicodeScalarView(); s.append(contentsOf: characters); return String(s) }
}
