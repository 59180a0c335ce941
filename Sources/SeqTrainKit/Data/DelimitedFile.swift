import Foundation

/// A CSV or TSV file as rows of cells: comma for .csv, tab for .tsv and .tab (and for files whose
/// first line has tabs and no commas). Quoted cells ("a, b", "say ""hi""") follow RFC 4180. Every
/// row remembers its line for messages.
public struct DelimitedFile {
    public let path: String
    public let delimiter: Character
    public var header: [String]?
    /// Rows of cells, with their 1-based line numbers.
    public var rows: [(line: Int, cells: [String])]

    public init(contentsOf path: String, header hasHeader: Bool) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SeqTrainError("\(path): cannot read the file: \(unreadableReason(path))")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw SeqTrainError("\(path): not UTF-8 text")
        }
        try self.init(text: text, path: path, header: hasHeader)
    }

    public init(text: String, path: String, header hasHeader: Bool) throws {
        self.path = path
        let lower = path.lowercased()
        let firstLine = text.prefix { $0 != "\n" }
        if lower.hasSuffix(".tsv") || lower.hasSuffix(".tab") || (!lower.hasSuffix(".csv") && firstLine.contains("\t") && !firstLine.contains(",")) {
            delimiter = "\t"
        } else {
            delimiter = ","
        }
        var rows: [(Int, [String])] = []
        var cells: [String] = []
        var cell = ""
        var quoted = false, wasQuoted = false
        var line = 1, rowLine = 1
        var iterator = text.unicodeScalars.makeIterator()
        var pending: Unicode.Scalar? = nil
        func endCell() {
            cells.append(wasQuoted ? cell : cell.trimmingCharacters(in: .whitespaces))
            cell = ""
            wasQuoted = false
        }
        func endRow() {
            endCell()
            if !(cells.count == 1 && cells[0].isEmpty) { rows.append((rowLine, cells)) }
            cells = []
        }
        while let c = pending ?? iterator.next() {
            pending = nil
            if quoted {
                if c == "\"" {
                    if let next = iterator.next() {
                        if next == "\"" { cell.unicodeScalars.append("\"") } else { quoted = false; pending = next }
                    } else {
                        quoted = false
                    }
                } else {
                    if c == "\n" { line += 1 }
                    cell.unicodeScalars.append(c)
                }
                continue
            }
            switch c {
            case "\"" where cell.trimmingCharacters(in: .whitespaces).isEmpty:
                quoted = true
                wasQuoted = true
                cell = ""
            case "\r":
                continue
            case "\n":
                endRow()
                line += 1
                rowLine = line
            default:
                if Character(c) == delimiter { endCell() } else { cell.unicodeScalars.append(c) }
            }
        }
        if quoted { throw SeqTrainError("\(path):\(rowLine): a quoted cell is never closed") }
        if !cell.isEmpty || !cells.isEmpty { endRow() }
        if hasHeader {
            guard !rows.isEmpty else { throw SeqTrainError("\(path): empty file; data.header = true expects a header line") }
            header = rows.removeFirst().1
        }
        self.rows = rows
    }

    /// The 0-based indices of `columns` (names from the header, or 0-based indices).
    public func columnIndices(_ columns: [String], width: Int, key: String) throws -> [Int] {
        try columns.map { column in
            if let header, let i = header.firstIndex(of: column) { return i }
            if let i = Int(column) {
                guard i >= 0 && i < width else {
                    throw SeqTrainError("\(key): column \(i) does not exist in \(path); its rows have \(width) columns (0 to \(width - 1))")
                }
                return i
            }
            let names = header.map { ": the header has " + $0.prefix(12).joined(separator: ", ") + ($0.count > 12 ? ", ..." : "") } ?? "; the file has no header (data.header = false), so name columns by 0-based index"
            throw SeqTrainError("\(key): no column \"\(column)\" in \(path)\(names)")
        }
    }

    /// The header's name of column `j`, when there is a header and it has that column.
    public func name(of j: Int) -> String? {
        guard let header, j >= 0, j < header.count else { return nil }
        return header[j]
    }

    /// A numeric cell: a number, or NaN for an empty cell or NaN/nan/NA.
    public static func number(_ cell: String) -> Double? {
        if cell.isEmpty || cell == "NaN" || cell == "nan" || cell == "NA" || cell == "?" { return .nan }
        return Double(cell)
    }
}
