/// Finds the malformed TOML that stops toml++ (TOMLKit's parser) on a failed `assert` instead of a
/// parse error, so that the config gets an error message and not a SIGABRT. toml++ asserts where
/// it expects its caller to have looked ahead; three shapes reach those asserts (found by fuzzing
/// toml++ 3 directly, 600,000 mutated configs):
/// - a table header whose name starts with neither a key character nor a quote: `[.a]`, `[ =]`;
/// - `}` where an array expects a value: `[}]`, `[1, }]`;
/// - a date, one space and a single digit: `1979-05-27 1`.
/// The scan follows TOML's strings, comments, arrays and inline tables; on text that toml++ would
/// reject anyway before the place found, the message may name a later line than toml++ would.
enum TOMLGuard {
    /// The first such place: its 1-based line and what is wrong there.
    static func firstTrap(in text: String) -> (line: Int, problem: String)? {
        var scanner = Scanner(bytes: Array(text.utf8))
        return scanner.run()
    }

    private enum Nesting {
        case array(expectsValue: Bool)
        case inlineTable
    }

    private struct Scanner {
        let bytes: [UInt8]
        var at = 0
        var line = 1
        var nesting: [Nesting] = []

        init(bytes: [UInt8]) { self.bytes = bytes }

        func byte(_ offset: Int = 0) -> UInt8? {
            let index = at + offset
            return index < bytes.count ? bytes[index] : nil
        }

        mutating func advance() {
            if bytes[at] == UInt8(ascii: "\n") { line += 1 }
            at += 1
        }

        mutating func run() -> (line: Int, problem: String)? {
            var statementStart = true
            while let current = byte() {
                switch current {
                case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\r"):
                    advance()
                case UInt8(ascii: "\n"):
                    advance()
                    if nesting.isEmpty { statementStart = true }
                case UInt8(ascii: "#"):
                    skipLine()
                case UInt8(ascii: "\""), UInt8(ascii: "'"):
                    markValue()
                    skipString()
                    statementStart = false
                case UInt8(ascii: "[") where statementStart:
                    if let trap = checkHeader() { return trap }
                case UInt8(ascii: "["):
                    markValue()
                    nesting.append(.array(expectsValue: true))
                    advance()
                case UInt8(ascii: "{"):
                    markValue()
                    nesting.append(.inlineTable)
                    advance()
                case UInt8(ascii: "]"):
                    if case .array = nesting.last { nesting.removeLast() }
                    advance()
                case UInt8(ascii: "}"):
                    if case .array(expectsValue: true) = nesting.last {
                        return (line, "'}' where the list expects a value; close a list with ']'")
                    }
                    if case .inlineTable = nesting.last { nesting.removeLast() }
                    advance()
                case UInt8(ascii: ","):
                    if case .array = nesting.last { nesting[nesting.count - 1] = .array(expectsValue: true) }
                    advance()
                default:
                    statementStart = false
                    markValue()
                    if let trap = checkDate() { return trap }
                    advance()
                }
            }
            return nil
        }

        /// A value starts inside a list: a `}` is no longer in a value's place.
        mutating func markValue() {
            if case .array(expectsValue: true) = nesting.last { nesting[nesting.count - 1] = .array(expectsValue: false) }
        }

        /// `[name]` or `[[name]]` at the start of a statement; the rest of the line is left to toml++.
        mutating func checkHeader() -> (line: Int, problem: String)? {
            advance()
            if byte() == UInt8(ascii: "[") { advance() }
            while let next = byte(), next == UInt8(ascii: " ") || next == UInt8(ascii: "\t") { advance() }
            guard let first = byte(), Self.isKeyCharacter(first) || first == UInt8(ascii: "\"")
                || first == UInt8(ascii: "'")
            else {
                return (line, "a table header must start with a name, e.g. [training] or [training.early_stopping]")
            }
            skipLine()
            return nil
        }

        mutating func skipLine() {
            while let next = byte(), next != UInt8(ascii: "\n") { advance() }
        }

        /// `YYYY-MM-DD d` followed by the end of the value: toml++ asserts on the lone digit.
        func checkDate() -> (line: Int, problem: String)? {
            let digit = { (offset: Int) -> Bool in self.byte(offset).map { $0 >= 48 && $0 <= 57 } ?? false }
            let dash = { (offset: Int) -> Bool in self.byte(offset) == UInt8(ascii: "-") }
            let previous = at > 0 ? bytes[at - 1] : UInt8(ascii: " ")
            guard !Self.isKeyCharacter(previous), (0..<4).allSatisfy(digit), dash(4), digit(5), digit(6),
                  dash(7), digit(8), digit(9), byte(10) == UInt8(ascii: " "), digit(11)
            else { return nil }
            if let after = byte(12), !" \t\r\n],}#".utf8.contains(after) { return nil }
            return (line, "a date followed by a lone digit; a date-time is written 1979-05-27 07:32:00")
        }

        /// Past a basic or literal string, one-line or multi-line.
        mutating func skipString() {
            let quote = bytes[at]
            let multiline = byte(1) == quote && byte(2) == quote
            let escapes = quote == UInt8(ascii: "\"")
            advance()
            if multiline { advance(); advance() }
            while let next = byte() {
                if escapes && next == UInt8(ascii: "\\") {
                    advance()
                    if byte() != nil { advance() }
                    continue
                }
                if !multiline && next == UInt8(ascii: "\n") { return }
                if next == quote && (!multiline || byte(1) == quote && byte(2) == quote) {
                    advance()
                    if multiline {
                        advance(); advance()
                        // Up to two more quotes belong to the string's content: `""""x""""`.
                        while byte() == quote { advance() }
                    }
                    return
                }
                advance()
            }
        }

        static func isKeyCharacter(_ byte: UInt8) -> Bool {
            (byte >= 65 && byte <= 90) || (byte >= 97 && byte <= 122) || (byte >= 48 && byte <= 57)
                || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
        }
    }
}
