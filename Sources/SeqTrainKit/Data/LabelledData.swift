import Foundation

/// Labels as the files wrote them, before the class map of a checkpoint applies.
public enum RawLabels: Equatable {
    /// One class per sample, as written ("3", "cat"): single-label.
    case names([String])
    /// (N, C) of 0/1, one column per label: multi-label.
    case matrix([Float], columns: [String])

    var count: Int {
        switch self {
        case .names(let n): return n.count
        case .matrix(let m, let columns): return columns.isEmpty ? 0 : m.count / columns.count
        }
    }

    func subset(_ indices: [Int]) -> RawLabels {
        switch self {
        case .names(let n): return .names(indices.map { n[$0] })
        case .matrix(let m, let columns):
            let c = columns.count
            return .matrix(indices.flatMap { m[($0 * c)..<($0 * c + c)] }, columns: columns)
        }
    }
}

/// How samples are shaped for the model: sequences (N, T, F) with a length each, or feature vectors (N, F).
public enum SampleLayout: String {
    case sequence, vector
}

/// Numeric samples with their labels: inputs (N, T, F) step-padded with zeros (T = 1 for vectors),
/// each sample's valid length, and the labels as written.
public struct LabelledData {
    public var inputs: [Float]    // (N, T, F)
    public var count: Int
    public var steps: Int
    public var features: Int
    public var lengths: [Int]     // (N)
    public var labels: RawLabels?
    /// Where the samples came from, for messages.
    public var source: String
    /// The header names of the value columns, in the order read (nil without a header or for .npy).
    public var columns: [String]?

    public init(inputs: [Float], count: Int, steps: Int, features: Int, lengths: [Int], labels: RawLabels?, source: String) {
        self.inputs = inputs
        self.count = count
        self.steps = steps
        self.features = features
        self.lengths = lengths
        self.labels = labels
        self.source = source
    }

    /// The samples at `indices`, in that order.
    public func subset(_ indices: [Int]) -> LabelledData {
        let width = steps * features
        var values = [Float]()
        values.reserveCapacity(indices.count * width)
        for i in indices { values += inputs[(i * width)..<((i + 1) * width)] }
        var part = LabelledData(inputs: values, count: indices.count, steps: steps, features: features,
                                lengths: indices.map { lengths[$0] }, labels: labels?.subset(indices), source: source)
        part.columns = columns
        return part
    }

    /// The samples at `indices` (−1: an empty row, length 1 of zeros) as one batch-first block
    /// (rows, steps, F), cut to the longest valid length among them, with each row's length.
    public func gather(_ indices: [Int]) -> (inputs: [Float], steps: Int, lengths: [Int]) {
        let T = steps, F = features
        let longest = max(1, indices.map { $0 >= 0 ? lengths[$0] : 1 }.max() ?? 1)
        var block = [Float](repeating: 0, count: indices.count * longest * F)
        for (r, s) in indices.enumerated() where s >= 0 {
            for t in 0..<lengths[s] {
                for f in 0..<F { block[(r * longest + t) * F + f] = inputs[(s * T + t) * F + f] }
            }
        }
        return (block, longest, indices.map { $0 >= 0 ? lengths[$0] : 1 })
    }

    /// A hash of the values, lengths and labels: equal on every rank that read the same data.
    public var fingerprint: UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ x: UInt64) { hash = (hash ^ x) &* 0x100_0000_01b3 }
        for v in inputs { mix(UInt64(v.bitPattern)) }
        for l in lengths { mix(UInt64(l)) }
        switch labels {
        case .names(let n)?: for s in n { for b in s.utf8 { mix(UInt64(b)) }; mix(0xff) }
        case .matrix(let m, _)?: for v in m { mix(UInt64(v.bitPattern)) }
        case nil: break
        }
        return hash
    }
}

/// Runs `body` over `range` of `data` in chunks, each gathered as one batch (cut to its longest
/// valid length). A chunk holds about 65,536 steps (8 to 256 samples), so the recurrent buffers of
/// a chunk stay small: 256 curves of 1,500 steps at once would take 400 MB.
func forEachChunk(of data: LabelledData, range: Range<Int>,
                  _ body: ([Int], (inputs: [Float], steps: Int, lengths: [Int])) throws -> Void) rethrows {
    let chunk = min(256, max(8, 65_536 / max(data.steps, 1)))
    var start = range.lowerBound
    while start < range.upperBound {
        let indices = Array(start..<min(start + chunk, range.upperBound))
        start += indices.count
        try body(indices, data.gather(indices))
    }
}

/// Reads inputs and labels from `.npy`, CSV or TSV files as the `[data]` keys of a numeric kind say.
public struct NumericReader {
    public var header = false
    /// Label columns of CSV/TSV inputs (names or 0-based indices).
    public var labelColumns: [String] = []
    /// Columns of CSV/TSV inputs left out and not read (an id, or labels a kind does not use).
    public var ignoredColumns: [String] = []
    /// The key that names `ignoredColumns` in messages.
    public var ignoredColumnsKey = "data.ignore_columns"
    /// Names of multi-label columns given by the user (for .npy labels, which have none).
    public var labelNames: [String] = []
    /// The value columns by header name, in this order (what a checkpoint was trained on): other
    /// columns are not read, and a missing one is an error. nil: every column not a label or ignored.
    public var inputColumns: [String]?
    public var layout: SampleLayout = .sequence
    /// data.format: "auto" (by extension), "npy", "csv", "tsv", "json" or "jsonl".
    public var format = "auto"
    /// JSON records: the dotted paths of a sample's numbers and of its label (data.input_field, data.label_field).
    public var inputField = "", labelField = ""
    /// NumPy archives: the arrays of the inputs and the labels (data.input_array, data.label_array).
    public var inputArray = "", labelArray = ""
    /// Whether an archive's other array is read as the labels when data.labels gives none (a kind
    /// that reads its labels itself, as the tagger's per-step labels, turns it off).
    public var readsArchiveLabels = true
    /// Keys named in messages.
    public var inputsKey = "data.inputs", labelsKey = "data.labels"

    public init() {}

    /// One file's values: its shape (N, ...) and labels taken from its columns.
    struct Part {
        var values: [Float]
        var shape: [Int]
        var labels: RawLabels?
        var path: String
        /// Header names of the value columns (CSV/TSV with a header).
        var columns: [String]? = nil
    }

    public func read(inputs patterns: [String], labels labelPatterns: [String]) throws -> LabelledData {
        let files = try TextFiles.expand(patterns, key: inputsKey)
        guard !files.isEmpty else { throw SeqTrainError("\(inputsKey): no input files given") }
        var parts: [Part] = []
        // With a header, every later file is read by the first file's column names, in its order.
        var columns = inputColumns
        for file in files {
            parts.append(try readInputs(file, columns: columns))
            columns = columns ?? parts[0].columns
        }
        let first = parts[0]
        for part in parts.dropFirst() where Array(part.shape.dropFirst()) != Array(first.shape.dropFirst()) {
            throw SeqTrainError("\(inputsKey): \(part.path) has samples of shape \(Array(part.shape.dropFirst())), \(first.path) of \(Array(first.shape.dropFirst())); every file must hold samples of one shape")
        }
        let count = parts.reduce(0) { $0 + $1.shape[0] }
        var values = [Float]()
        values.reserveCapacity(parts.reduce(0) { $0 + $1.values.count })
        for part in parts { values += part.values }
        let source = files.count == 1 ? parts[0].path : "\(parts[0].path) and \(files.count - 1) more"

        // Layout: (N, T) and (N, T, F) are sequences; for vectors, (N, F) or flattened (N, T·F).
        let sampleShape = Array(first.shape.dropFirst())
        var steps = 1, features = 1
        switch (layout, sampleShape.count) {
        case (_, 0):
            throw SeqTrainError("\(inputsKey): \(first.path) has shape \(first.shape): one number per sample; inputs are (N, T), (N, T, F) or (N, F)")
        case (.sequence, 1): steps = sampleShape[0]
        case (.sequence, 2): steps = sampleShape[0]; features = sampleShape[1]
        case (.vector, _): features = sampleShape.reduce(1, *)
        default:
            throw SeqTrainError("\(inputsKey): \(first.path) has shape \(first.shape); sequences are (N, T) or (N, T, F)")
        }
        guard count > 0, steps > 0, features > 0 else {
            throw SeqTrainError("\(inputsKey): \(source) holds no samples (shape \(first.shape))")
        }
        var lengths = [Int](repeating: steps, count: count)
        try Self.checkMissingValues(&values, lengths: &lengths, steps: steps, features: features, layout: layout,
                                    files: parts.map { ($0.path, $0.shape[0]) })

        var labels: RawLabels?
        if !labelPatterns.isEmpty {
            let labelFiles = try TextFiles.expand(labelPatterns, key: labelsKey)
            var all: [RawLabels] = []
            for file in labelFiles { all.append(try readLabels(file)) }
            labels = try Self.concatenate(all, key: labelsKey)
        } else if parts.allSatisfy({ $0.labels != nil }) {
            labels = try Self.concatenate(parts.map { $0.labels! }, key: inputsKey)
        }
        if case .matrix(let m, let columns)? = labels, !labelNames.isEmpty {
            guard labelNames.count == columns.count else {
                throw SeqTrainError("data.label_names names \(labelNames.count) labels, the labels have \(columns.count) columns")
            }
            labels = .matrix(m, columns: labelNames)
        }
        if let labels, labels.count != count {
            throw SeqTrainError("\(labelsKey): \(labels.count) labels for \(count) samples in \(inputsKey) (\(source)); give one label (row) per sample")
        }
        var data = LabelledData(inputs: values, count: count, steps: steps, features: features, lengths: lengths,
                                labels: labels, source: source)
        data.columns = first.columns
        return data
    }

    static func concatenate(_ parts: [RawLabels], key: String) throws -> RawLabels {
        if parts.count == 1 { return parts[0] }
        if case .names = parts[0] {
            var all: [String] = []
            for part in parts {
                guard case .names(let n) = part else { throw SeqTrainError("\(key): some files hold one label per sample, others several") }
                all += n
            }
            return .names(all)
        }
        guard case .matrix(_, let columns) = parts[0] else { return parts[0] }
        var all: [Float] = []
        for part in parts {
            guard case .matrix(let m, let c) = part, c.count == columns.count else {
                throw SeqTrainError("\(key): the label files have different numbers of label columns")
            }
            all += m
        }
        return .matrix(all, columns: columns)
    }

    /// Trailing NaN steps end a shorter sequence (the UCR archive's convention): they get length and
    /// zeros. A NaN anywhere else, a step with some features missing, or an empty sample is an error.
    static func checkMissingValues(_ values: inout [Float], lengths: inout [Int], steps: Int, features: Int, layout: SampleLayout,
                                   files: [(path: String, count: Int)]) throws {
        func place(_ sample: Int) -> String {
            var i = sample
            for (path, n) in files {
                if i < n { return "\(path): sample \(i)" }
                i -= n
            }
            return "sample \(sample)"
        }
        let width = steps * features
        for n in 0..<lengths.count {
            let base = n * width
            if layout == .vector {
                if let j = (0..<width).first(where: { values[base + $0].isNaN }) {
                    throw SeqTrainError("\(place(n)), column \(j): missing value (NaN); feature vectors must be complete (only sequences may end early with trailing NaNs)")
                }
                if let j = (0..<width).first(where: { values[base + $0].isInfinite }) {
                    throw SeqTrainError("\(place(n)), column \(j): the value is infinite")
                }
                continue
            }
            var length = 0
            var sawMissing = -1
            for t in 0..<steps {
                let row = base + t * features
                let missing = (0..<features).filter { values[row + $0].isNaN }.count
                if missing == features {
                    if sawMissing < 0 { sawMissing = t }
                    continue
                }
                if missing > 0 {
                    throw SeqTrainError("\(place(n)), step \(t): \(missing) of \(features) features are NaN; a step is either complete or, at the end of a shorter sequence, entirely NaN")
                }
                if sawMissing >= 0 {
                    throw SeqTrainError("\(place(n)), step \(sawMissing): NaN inside the sequence (step \(t) has values again); only trailing NaNs may mark a shorter sequence's end")
                }
                if let f = (0..<features).first(where: { values[row + $0].isInfinite }) {
                    throw SeqTrainError("\(place(n)), step \(t), feature \(f): the value is infinite")
                }
                length = t + 1
            }
            guard length > 0 else { throw SeqTrainError("\(place(n)): empty sample (every value is NaN)") }
            lengths[n] = length
            for i in (base + length * features)..<(base + width) { values[i] = 0 }
        }
    }

    func readInputs(_ path: String, columns wanted: [String]?) throws -> Part {
        let format = try NumericFormat.of(path, given: self.format, key: inputsKey)
        if format == "json" || format == "jsonl" {
            if !labelColumns.isEmpty {
                throw SeqTrainError("data.label_columns: \(path) holds JSON records, which have fields, not columns; "
                    + "name the label's field with data.label_field")
            }
            var records = JSONRecords(inputField: inputField, labelField: labelField, inputsKey: inputsKey)
            records.vectors = layout == .vector
            return try records.read(path, lines: format == "jsonl")
        }
        if format == "npz" { return try readArchive(path) }
        if format == "npy" {
            let array = try NumpyArray(contentsOf: path)
            guard array.shape.count >= 2 && array.shape.count <= 3 else {
                throw SeqTrainError("\(inputsKey): \(path) has shape \(array.shape); inputs are (N, T), (N, T, F) or (N, F)")
            }
            if !labelColumns.isEmpty {
                throw SeqTrainError("data.label_columns: \(path) is a .npy file, which has no columns; give its labels in data.labels")
            }
            if !ignoredColumns.isEmpty {
                throw SeqTrainError("\(ignoredColumnsKey): \(path) is a .npy file, which has no columns; leave \(ignoredColumnsKey) empty")
            }
            return Part(values: array.floats(), shape: array.shape, labels: nil, path: path)
        }
        let table = try DelimitedFile(contentsOf: path, header: header)
        guard let width = table.rows.first?.cells.count else { throw SeqTrainError("\(inputsKey): \(path) has no rows") }
        let labelIndices = try table.columnIndices(labelColumns, width: width, key: "data.label_columns")
        let ignored = try table.columnIndices(ignoredColumns, width: width, key: ignoredColumnsKey)
        var valueColumns = (0..<width).filter { !labelIndices.contains($0) && !ignored.contains($0) }
        if let wanted, let names = table.header {
            valueColumns = try Self.indices(of: wanted, in: names, path: path, key: inputsKey)
            if let beyond = valueColumns.first(where: { $0 >= width }) {
                throw SeqTrainError("\(path): the header names column \(names[beyond]) at position \(beyond), "
                    + "but the first row has \(width) cells; every row needs a cell for every header name")
            }
        }
        guard !valueColumns.isEmpty else { throw SeqTrainError("\(inputsKey): \(path) has only label or ignored columns") }
        var values = [Float]()
        values.reserveCapacity(table.rows.count * valueColumns.count)
        var names: [String] = [], matrix: [Float] = []
        for (line, cells) in table.rows {
            guard cells.count == width else {
                throw SeqTrainError("\(path):\(line): \(cells.count) cells where the first row has \(width); every row needs the same number of columns (pad shorter sequences with trailing NaN)")
            }
            for j in valueColumns {
                guard let v = DelimitedFile.number(cells[j]) else {
                    throw SeqTrainError("\(path):\(line): column \(j)\(table.name(of: j).map { " (\($0))" } ?? ""): \"\(cells[j].prefix(40))\" is not a number")
                }
                values.append(Float(v))
            }
            if labelIndices.count == 1 {
                names.append(cells[labelIndices[0]])
            } else {
                for j in labelIndices { matrix.append(try Self.zeroOne(cells[j], at: "\(path):\(line): column \(j)")) }
            }
        }
        var labels: RawLabels?
        if labelIndices.count == 1 { labels = .names(names) }
        if labelIndices.count > 1 { labels = .matrix(matrix, columns: labelIndices.map { table.name(of: $0) ?? String($0) }) }
        return Part(values: values, shape: [table.rows.count, valueColumns.count], labels: labels, path: path,
                    columns: table.header.map { _ in valueColumns.map { table.name(of: $0) ?? String($0) } })
    }

    /// A NumPy archive: the inputs are data.input_array (default: the first array), the labels
    /// data.label_array (default: the second array, when there is one and data.labels gives none).
    func readArchive(_ path: String) throws -> Part {
        let archive = try NumpyArchive(contentsOf: path)
        let inputName = inputArray.isEmpty ? archive.names[0] : inputArray
        let inputs = try archive.array(inputName, key: "data.input_array")
        guard inputs.shape.count >= 2 && inputs.shape.count <= 3 else {
            throw SeqTrainError("\(inputsKey): \(path)[\(inputName)] has shape \(inputs.shape); inputs are (N, T), "
                + "(N, T, F) or (N, F)")
        }
        var labelName = labelArray
        if labelName.isEmpty && readsArchiveLabels && archive.names.count >= 2 {
            labelName = archive.names.first { $0 != inputName } ?? ""
        }
        var labels: RawLabels?
        if !labelName.isEmpty {
            let array = try archive.array(labelName, key: "data.label_array")
            labels = try self.labels(of: array, path: "\(path)[\(labelName)]")
        }
        return Part(values: inputs.floats(), shape: inputs.shape, labels: labels,
                    path: labelName.isEmpty ? "\(path)[\(inputName)]" : "\(path)[\(inputName), \(labelName)]")
    }

    /// The positions of `wanted` among a header's `names`; every name must be there.
    static func indices(of wanted: [String], in names: [String], path: String, key: String) throws -> [Int] {
        let missing = wanted.filter { !names.contains($0) }
        guard missing.isEmpty else {
            let listed = missing.prefix(8).joined(separator: ", ") + (missing.count > 8 ? ", ..." : "")
            throw SeqTrainError("\(key): \(path) has no column \(listed); the model reads the columns "
                + "\(wanted.prefix(12).joined(separator: ", "))\(wanted.count > 12 ? ", ..." : "") by header name, "
                + "and \(path)'s header is \(names.prefix(12).joined(separator: ", "))\(names.count > 12 ? ", ..." : "")")
        }
        return wanted.compactMap { names.firstIndex(of: $0) }
    }

    static func zeroOne(_ cell: String, at place: String) throws -> Float {
        guard let v = Double(cell), v == 0 || v == 1 else {
            throw SeqTrainError("\(place): \"\(cell.prefix(40))\" is not 0 or 1; multi-label columns hold 0 or 1 per label")
        }
        return Float(v)
    }

    func readLabels(_ path: String) throws -> RawLabels {
        if path.lowercased().hasSuffix(".npy") { return try labels(of: try NumpyArray(contentsOf: path), path: path) }
        return try delimitedLabels(path)
    }

    /// (N,) class ids, or (N, C) multi-label 0/1, from an array.
    func labels(of array: NumpyArray, path: String) throws -> RawLabels {
        let values = array.doubles()
        if array.shape.count == 1 || (array.shape.count == 2 && array.shape[1] == 1) {
            return .names(try values.enumerated().map { i, v in
                guard v.isFinite, v == v.rounded(), abs(v) < 1e15 else {
                    throw SeqTrainError("\(labelsKey): \(path), sample \(i): \(v) is not a class id (an integer)")
                }
                return String(Int64(v))
            })
        }
        guard array.shape.count == 2 else {
            throw SeqTrainError("\(labelsKey): \(path) has shape \(array.shape); "
                + "labels are (N,) class ids or (N, C) of 0/1")
        }
        let c = array.shape[1]
        for (i, v) in values.enumerated() where v != 0 && v != 1 {
            throw SeqTrainError("\(labelsKey): \(path), sample \(i / c), label \(i % c): \(v) is not 0 or 1; "
                + "(N, C) labels are multi-label 0/1")
        }
        return .matrix(values.map { Float($0) }, columns: (0..<c).map(String.init))
    }

    func delimitedLabels(_ path: String) throws -> RawLabels {
        let table = try DelimitedFile(contentsOf: path, header: header)
        guard let width = table.rows.first?.cells.count else { throw SeqTrainError("\(labelsKey): \(path) has no rows") }
        var names: [String] = [], matrix: [Float] = []
        for (line, cells) in table.rows {
            guard cells.count == width else { throw SeqTrainError("\(path):\(line): \(cells.count) cells where the first row has \(width)") }
            if width == 1 { names.append(cells[0]) } else {
                for (j, cell) in cells.enumerated() { matrix.append(try Self.zeroOne(cell, at: "\(path):\(line): column \(j)")) }
            }
        }
        return width == 1 ? .names(names) : .matrix(matrix, columns: (0..<width).map { table.name(of: $0) ?? String($0) })
    }
}

/// Features computed once at load: the log-magnitude of each channel's real FFT over its valid
/// length, first `bins` frequencies (bins past the length's Nyquist frequency are zero). The
/// transform is divided by the length (numpy's norm="forward"), so samples of different lengths
/// with the same shape get the same features: log(1 + |Σ_t x_t e^(−2πikt/L)| / L).
public enum SpectralFeatures {
    /// (N, T, F) sequences → (N, 1, F·bins) vectors, channel-major.
    public static func logMagnitude(_ data: LabelledData, bins: Int) -> LabelledData {
        let n = data.count, T = data.steps, F = data.features
        var out = [Float](repeating: 0, count: n * F * bins)
        var twiddles: [Int: (cos: [Double], sin: [Double])] = [:]
        for s in 0..<n {
            let length = data.lengths[s]
            let table = twiddles[length] ?? {
                let c = (0..<length).map { cos(2 * Double.pi * Double($0) / Double(length)) }
                let si = (0..<length).map { sin(2 * Double.pi * Double($0) / Double(length)) }
                twiddles[length] = (c, si)
                return (c, si)
            }()
            for f in 0..<F {
                for k in 0..<min(bins, length / 2 + 1) {
                    var re = 0.0, im = 0.0, index = 0
                    for t in 0..<length {
                        let x = Double(data.inputs[(s * T + t) * F + f])
                        re += x * table.cos[index]
                        im -= x * table.sin[index]
                        index += k
                        if index >= length { index -= length }
                    }
                    out[(s * F + f) * bins + k] = Float(log1p((re * re + im * im).squareRoot() / Double(length)))
                }
            }
        }
        return LabelledData(inputs: out, count: n, steps: 1, features: F * bins, lengths: [Int](repeating: 1, count: n),
                            labels: data.labels, source: data.source)
    }
}

/// Per-feature standardization fitted on the training split (valid steps only), stored in the
/// checkpoint so `eval` and `predict` read new data as training did.
public struct Standardization: Equatable {
    public var mean: [Float]
    public var std: [Float]

    public init(mean: [Float], std: [Float]) {
        self.mean = mean
        self.std = std
    }

    public init(fitting data: LabelledData) {
        let F = data.features
        var sum = [Double](repeating: 0, count: F), squares = sum
        var counted = 0.0
        for s in 0..<data.count {
            for t in 0..<data.lengths[s] {
                for f in 0..<F {
                    let x = Double(data.inputs[(s * data.steps + t) * F + f])
                    sum[f] += x
                    squares[f] += x * x
                }
            }
            counted += Double(data.lengths[s])
        }
        mean = sum.map { Float($0 / max(counted, 1)) }
        std = (0..<F).map { f in
            let m = sum[f] / max(counted, 1)
            let variance = max(squares[f] / max(counted, 1) - m * m, 0)
            let s = variance.squareRoot()
            return s > 1e-12 ? Float(s) : 1
        }
    }

    /// Standardizes the valid steps of `data` in place (padding stays zero).
    public func apply(_ data: inout LabelledData) {
        let F = data.features
        for s in 0..<data.count {
            for t in 0..<data.lengths[s] {
                for f in 0..<F {
                    let i = (s * data.steps + t) * F + f
                    data.inputs[i] = (data.inputs[i] - mean[f]) / std[f]
                }
            }
        }
    }
}
