import Foundation

/// One time series: T steps of F named columns, row-major (T, F).
public struct TimeSeries {
    public var values: [Float]
    public var steps: Int
    public var columns: [String]
    public var source: String
    /// Every column of the file, read or not (names with a header, else 0-based indices).
    public var fileColumns: [String]
    /// The timestamps of data.time_column, when the series has one.
    public var clock: SeriesClock?
    public var features: Int { columns.count }

    public init(values: [Float], steps: Int, columns: [String], source: String, fileColumns: [String]? = nil) {
        self.values = values
        self.steps = steps
        self.columns = columns
        self.source = source
        self.fileColumns = fileColumns ?? columns
    }

    public subscript(t: Int, f: Int) -> Float { values[t * features + f] }
}

/// Reads series from `.npy` files of (T,) or (T, F), or CSV/TSV files with one row per time step:
/// every file is one series. `columns` picks the columns the model reads (names with a header,
/// or 0-based indices; empty: all of them).
public struct SeriesReader {
    public var header = false
    public var columns: [String] = []
    /// data.time_column: a column of timestamps (by name or index), not read as a value.
    public var timeColumn = ""
    public var key = "data.inputs"

    public init() {}

    public func read(_ patterns: [String]) throws -> [TimeSeries] {
        let files = try TextFiles.expand(patterns, key: key)
        guard !files.isEmpty else { throw SeqTrainError("\(key): no series files given") }
        let series = try files.map(readOne)
        for s in series.dropFirst() where s.columns != series[0].columns {
            throw SeqTrainError("\(key): \(s.source) has the columns \(s.columns), "
                + "\(series[0].source) \(series[0].columns); "
                + "every series needs the same columns")
        }
        // Without a header a column is known by its position only, so every file needs as many.
        for s in series.dropFirst() where !header && s.fileColumns.count != series[0].fileColumns.count {
            throw SeqTrainError("\(key): \(s.source) has \(s.fileColumns.count) columns, \(series[0].source) "
                + "\(series[0].fileColumns.count); without a header (data.header = false) columns are read by position, "
                + "so every file needs the same columns in the same order")
        }
        return series
    }

    func readOne(_ path: String) throws -> TimeSeries {
        var names: [String], picked: [Int], out: [Float]       // out: (T, picked)
        var times: [String]?
        if path.lowercased().hasSuffix(".npy") {
            let array = try NumpyArray(contentsOf: path)
            guard (1...2).contains(array.shape.count), array.shape[0] >= 1 else {
                throw SeqTrainError("\(key): \(path) has shape \(array.shape); a series is (T,) or (T, F)")
            }
            let width = array.shape.count == 2 ? array.shape[1] : 1
            guard width >= 1 else { throw SeqTrainError("\(key): \(path) has no columns (shape \(array.shape))") }
            guard timeColumn.isEmpty else {
                throw SeqTrainError("data.time_column: \(path) is a .npy file, which has no columns; "
                    + "leave data.time_column empty or give the series as CSV with its time column")
            }
            names = (0..<width).map(String.init)
            picked = try columnIndices(names, path: path)
            let values = array.floats()
            out = (0..<(values.count / width)).flatMap { t in picked.map { values[t * width + $0] } }
        } else {
            // Only the columns the model reads are parsed: the others may hold dates, ids or text.
            let table = try DelimitedFile(contentsOf: path, header: header)
            guard let width = table.rows.first?.cells.count else { throw SeqTrainError("\(key): \(path) has no rows") }
            names = (0..<width).map { table.name(of: $0) ?? String($0) }
            let time = try timeColumn.isEmpty ? nil
                : columnIndex(timeColumn, in: names, path: path, key: "data.time_column")
            picked = try columnIndices(names, path: path, excluding: time)
            out = []
            out.reserveCapacity(table.rows.count * picked.count)
            times = time.map { _ in [] }
            for (line, cells) in table.rows {
                guard cells.count == width else {
                    throw SeqTrainError("\(path):\(line): \(cells.count) cells where the first row has \(width); every time step needs every column")
                }
                for j in picked {
                    guard let v = DelimitedFile.number(cells[j]) else {
                        let name = table.name(of: j).map { " (\($0))" } ?? ""
                        throw SeqTrainError("\(path):\(line): column \(j)\(name): \"\(cells[j].prefix(40))\" is not "
                            + "a number; the columns the model reads (data.columns) hold numbers, "
                            + "other columns are not read")
                    }
                    out.append(Float(v))
                }
                if let time { times?.append(cells[time]) }
            }
        }
        let steps = out.count / max(picked.count, 1)
        for t in 0..<steps {
            for (k, j) in picked.enumerated() where !out[t * picked.count + k].isFinite {
                let v = out[t * picked.count + k]
                let what = v.isNaN ? "missing (NaN)" : "infinite"
                throw SeqTrainError("\(path): step \(t), column \(names[j]): \(what); a series needs a value at "
                    + "every step: fill the gap (carry the last value, interpolate) before training")
            }
        }
        var series = TimeSeries(values: out, steps: steps, columns: picked.map { names[$0] }, source: path,
                                fileColumns: names)
        if let times { series.clock = try SeriesClock(times, path: path) }
        return series
    }

    /// The position of one column named by header name or 0-based index.
    func columnIndex(_ column: String, in names: [String], path: String, key: String) throws -> Int {
        if let index = names.firstIndex(of: column) { return index }
        if let index = Int(column), names.indices.contains(index) { return index }
        let listed = names.prefix(12).joined(separator: ", ") + (names.count > 12 ? ", ..." : "")
        throw SeqTrainError("\(key): \(path) has no column \"\(column.prefix(40))\" (it has \(listed))")
    }

    /// The indices of `columns` among `names` (by name, or by 0-based index).
    func columnIndices(_ names: [String], path: String, excluding time: Int? = nil) throws -> [Int] {
        guard !columns.isEmpty else { return names.indices.filter { $0 != time } }
        var seen = Set<Int>()
        return try columns.map { column in
            let index = try columnIndex(column, in: names, path: path, key: "data.columns")
            guard seen.insert(index).inserted else { throw SeqTrainError("data.columns: the column \"\(column)\" is named twice") }
            guard index != time else {
                throw SeqTrainError("data.columns: \"\(column)\" is the time column (data.time_column); it holds "
                    + "timestamps, not values the model reads")
            }
            return index
        }
    }
}

extension SyntheticSets {
    /// Noisy seasonal series with trend: `features` columns of `length` steps, each a level, a
    /// linear trend, a season of `season` steps and a slower one of 7 seasons (each of its own
    /// phase and size), plus AR(1) noise; the columns move together through a shared component.
    /// Returns (length, features) values, row-major.
    public static func series(length: Int, features: Int, season: Int, seed: UInt64) -> [Float] {
        let random = CounterRandom(seed: seed, purpose: .synthetic)
        var out = [Float](repeating: 0, count: length * features)
        var shared = 0.0
        var noise = [Double](repeating: 0, count: features)
        let p = Double(max(season, 1))
        let shape = (0..<features).map { f -> (level: Double, trend: Double, a: Double, phase: Double, b: Double) in
            func u(_ k: UInt64) -> Double { Double(random.uniform(stream: 1_000_000 + UInt64(f), index: k)) }
            return (10 + 5 * u(0), (u(1) - 0.3) * 4 / Double(max(length, 1)), 2 + 2 * u(2), 2 * Double.pi * u(3), 0.5 + u(4))
        }
        for t in 0..<length {
            shared = 0.9 * shared + 0.3 * Double(random.normal(stream: 0, index: UInt64(t)))
            for f in 0..<features {
                noise[f] = 0.7 * noise[f] + 0.2 * Double(random.normal(stream: 1 + UInt64(f), index: UInt64(t)))
                let s = shape[f], x = Double(t)
                let value = s.level + s.trend * x + s.a * sin(2 * Double.pi * x / p + s.phase) + s.b * sin(2 * Double.pi * x / (7 * p) + 2 * s.phase)
                    + shared + noise[f]
                out[t * features + f] = Float(value)
            }
        }
        return out
    }
}
