import Foundation

/// A JSON value as the readers need it: numbers apart from booleans, which JSONSerialization on
/// Linux does not tell apart. The parser bounds the nesting depth, so decoding cannot overflow the stack.
indirect enum JSONValue: Decodable {
    case number(Double), text(String), boolean(Bool), list([JSONValue]), record([String: JSONValue]), null

    init(from decoder: Decoder) throws {
        let single = try decoder.singleValueContainer()
        if single.decodeNil() { self = .null }
        else if let b = try? single.decode(Bool.self) { self = .boolean(b) }
        else if let d = try? single.decode(Double.self) { self = .number(d) }
        else if let s = try? single.decode(String.self) { self = .text(s) }
        else if let l = try? single.decode([JSONValue].self) { self = .list(l) }
        else { self = .record(try single.decode([String: JSONValue].self)) }
    }

    /// The value at a dotted path ("data.y"); nil when a step is missing or not a record.
    func at(_ path: String) -> JSONValue? {
        var value = self
        for step in path.split(separator: ".", omittingEmptySubsequences: false) {
            guard case .record(let fields) = value, let next = fields[String(step)] else { return nil }
            value = next
        }
        return value
    }

    var kindName: String {
        switch self {
        case .number: return "a number"
        case .text: return "a string"
        case .boolean: return "true/false"
        case .list: return "a list"
        case .record: return "a record"
        case .null: return "null"
        }
    }
}

/// Samples from JSON (a list of records) or JSON Lines (a record per line): `data.input_field` names
/// the numbers of a sample (a list of numbers, or of lists for several channels per step; empty: the
/// record is that list), `data.label_field` its class, or a list of classes for multi-label. Records
/// of different lengths are variable-length samples (padded as trailing NaN, as the UCR files are).
struct JSONRecords {
    var inputField: String
    var labelField: String
    var inputsKey: String
    /// Samples become vectors (the layout of vector models): every record must have one length.
    var vectors = false

    func read(_ path: String, lines: Bool) throws -> NumericReader.Part {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SeqTrainError("\(inputsKey): \(path): cannot read the file: \(unreadableReason(path))")
        }
        var records: [(place: String, value: JSONValue)] = []
        if lines {
            var number = 0
            for line in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
                number += 1
                guard line.contains(where: { $0 != 32 && $0 != 9 && $0 != 13 }) else { continue }
                records.append(("\(path):\(number)", try decode(Data(line), place: "\(path):\(number)")))
            }
        } else {
            guard case .list(let all) = try decode(data, place: path) else {
                throw SeqTrainError("\(path): the JSON is not a list of records; give [{...}, {...}] or JSON Lines "
                    + "(.jsonl, a record per line)")
            }
            records = all.enumerated().map { ("\(path), record \($0)", $1) }
        }
        guard !records.isEmpty else { throw SeqTrainError("\(inputsKey): \(path) holds no records") }

        var samples: [[[Double]]] = []      // (N, T_n, F)
        var channels: Int?
        var classes: [[String]] = []        // (N, labels)
        var multiLabel = false
        for (place, record) in records {
            let sample = try steps(of: record, place: place)
            if let channels, sample[0].count != channels {
                throw SeqTrainError("\(place): \(inputFieldName) has \(sample[0].count) channel(s) per step, "
                    + "earlier records \(channels); every step of every record needs the same number")
            }
            channels = sample[0].count
            samples.append(sample)
            guard !labelField.isEmpty else { continue }
            guard let label = record.at(labelField) else {
                throw SeqTrainError("\(place): no field \(labelField) (data.label_field)\(fieldList(record))")
            }
            switch label {
            case .list(let items):
                multiLabel = true
                classes.append(try items.map { try className($0, place: place) })
            default: classes.append([try className(label, place: place)])
            }
        }
        let F = channels ?? 1
        let T = samples.map(\.count).max() ?? 1
        if vectors, let shortest = samples.map(\.count).min(), shortest != T {
            throw SeqTrainError("\(inputsKey): the records of \(path) have \(shortest) to \(T) steps; a vector model "
                + "needs samples of one length. data.features = [\"downsample\", \"stats\"] (or \"rfft\") reads "
                + "records of any length")
        }
        let count = try MemoryCheck.product([samples.count, T, F], what: "records × steps × channels")
        try MemoryCheck.require(floats: count, what: "the records of \(path)", fix: "split the file or shorten records")
        var values = [Float](repeating: .nan, count: count)     // (N, T, F), trailing NaN pads
        for (n, sample) in samples.enumerated() {
            for (t, step) in sample.enumerated() {
                for (f, x) in step.enumerated() { values[(n * T + t) * F + f] = Float(x) }
            }
        }
        var labels: RawLabels?
        if !labelField.isEmpty {
            if multiLabel {
                let names = ClassifierPreprocessing.classNames(of: .names(Array(Set(classes.joined()))))
                let column = Dictionary(names.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
                var matrix = [Float](repeating: 0, count: samples.count * names.count)
                for (n, set) in classes.enumerated() {
                    for name in set { if let j = column[name] { matrix[n * names.count + j] = 1 } }
                }
                labels = .matrix(matrix, columns: names)
            } else {
                labels = .names(classes.map { $0[0] })
            }
        }
        return NumericReader.Part(values: values, shape: F == 1 ? [samples.count, T] : [samples.count, T, F],
                                  labels: labels, path: path)
    }

    var inputFieldName: String { inputField.isEmpty ? "the record" : inputField }

    func decode(_ data: Data, place: String) throws -> JSONValue {
        do {
            return try JSONDecoder().decode(JSONValue.self, from: data)
        } catch DecodingError.dataCorrupted(let context) {
            let reason = (context.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String
            throw SeqTrainError("\(place): not valid JSON (\(reason ?? context.debugDescription))")
        } catch {
            throw SeqTrainError("\(place): not valid JSON")
        }
    }

    /// A record's sample as steps of channels.
    func steps(of record: JSONValue, place: String) throws -> [[Double]] {
        let value: JSONValue
        if inputField.isEmpty {
            value = record
        } else {
            guard let found = record.at(inputField) else {
                throw SeqTrainError("\(place): no field \(inputField) (data.input_field)\(fieldList(record))")
            }
            value = found
        }
        guard case .list(let items) = value else {
            if inputField.isEmpty, case .record = record {
                throw SeqTrainError("\(place): the records are objects; name the field that holds a sample's "
                    + "numbers with data.input_field (a dotted path such as \"data.y\")\(fieldList(record))")
            }
            throw SeqTrainError("\(place): \(inputFieldName) is \(value.kindName), not a list of numbers")
        }
        guard !items.isEmpty else { throw SeqTrainError("\(place): \(inputFieldName) is an empty list") }
        let steps = try items.enumerated().map { t, item -> [Double] in
            switch item {
            case .number(let x): return [x]
            case .list(let inner) where !inner.isEmpty:
                return try inner.enumerated().map { f, x in
                    guard case .number(let v) = x else {
                        throw SeqTrainError("\(place): \(inputFieldName)[\(t)][\(f)] is \(x.kindName), not a number")
                    }
                    return v
                }
            default:
                throw SeqTrainError("\(place): \(inputFieldName)[\(t)] is \(item.kindName); a step is a number, "
                    + "or a list of numbers (one per channel)")
            }
        }
        if let t = steps.firstIndex(where: { $0.count != steps[0].count }) {
            throw SeqTrainError("\(place): \(inputFieldName)[\(t)] has \(steps[t].count) channel(s), step 0 has "
                + "\(steps[0].count); every step needs the same number")
        }
        return steps
    }

    func className(_ value: JSONValue, place: String) throws -> String {
        switch value {
        case .text(let s) where !s.isEmpty: return s
        case .number(let x) where x == x.rounded() && abs(x) < 1e15: return String(Int64(x))
        default:
            throw SeqTrainError("\(place): \(labelField) is \(value.kindName); a class is a name or an integer id, "
                + "and several classes (multi-label) are a list of them")
        }
    }

    func fieldList(_ record: JSONValue) -> String {
        guard case .record(let fields) = record else { return "" }
        let names = fields.keys.sorted()
        return "; its fields: " + names.prefix(10).joined(separator: ", ") + (names.count > 10 ? ", ..." : "")
    }
}

/// Which reader a data file gets: data.format, or its extension. Formats people try and seqtrain does
/// not read are named with the NumPy line that converts them.
enum NumericFormat {
    static let choices = ["auto", "npy", "npz", "csv", "tsv", "json", "jsonl"]

    static let conversions: [(extensions: [String], name: String, convert: String)] = [
        ([".parquet", ".pq"], "Parquet", "pandas.read_parquet(PATH).to_csv(\"data.csv\", index=False)"),
        ([".pkl", ".pickle"], "a Python pickle", "np.save(\"data.npy\", np.asarray(pickle.load(open(PATH, \"rb\"))))"),
        ([".h5", ".hdf5", ".hdf"], "HDF5", "np.save(\"data.npy\", h5py.File(PATH)[\"DATASET\"][()])"),
        ([".xlsx", ".xls", ".ods"], "a spreadsheet", "pandas.read_excel(PATH).to_csv(\"data.csv\", index=False)"),
        ([".feather", ".arrow"], "Arrow/Feather", "pandas.read_feather(PATH).to_csv(\"data.csv\", index=False)"),
        ([".mat"], "a MATLAB file", "np.save(\"data.npy\", scipy.io.loadmat(PATH)[\"VARIABLE\"])"),
    ]

    /// "npy", "csv" (also TSV: DelimitedFile picks the delimiter), "json" or "jsonl".
    static func of(_ path: String, given: String, key: String) throws -> String {
        let lower = path.lowercased()
        switch given {
        case "npy", "npz", "json", "jsonl": return given
        case "csv", "tsv": return "csv"
        default: break
        }
        if lower.hasSuffix(".npy") { return "npy" }
        if lower.hasSuffix(".npz") { return "npz" }
        if lower.hasSuffix(".json") { return "json" }
        if lower.hasSuffix(".jsonl") || lower.hasSuffix(".ndjson") { return "jsonl" }
        if let known = conversions.first(where: { $0.extensions.contains { lower.hasSuffix($0) } }) {
            throw SeqTrainError("\(key): \(path) is \(known.name), which seqtrain does not read; it reads .npy, .npz, "
                + "CSV/TSV and JSON records. Convert it in Python: "
                + known.convert.replacingOccurrences(of: "PATH", with: "\"\(path)\""))
        }
        // A JSON file under another name would fail as CSV at its first cell: say what it is.
        if let handle = FileHandle(forReadingAtPath: path) {
            defer { try? handle.close() }
            let head = (try? handle.read(upToCount: 256)) ?? Data()
            if let first = head.first(where: { ![32, 9, 10, 13].contains($0) }),
               first == UInt8(ascii: "[") || first == UInt8(ascii: "{") {
                let opening = Character(Unicode.Scalar(first))
                throw SeqTrainError("\(key): \(path) looks like JSON (it starts with \"\(opening)\"); name it .json "
                    + "(a list of records) or .jsonl (a record per line), or set data.format = \"json\" or "
                    + "\"jsonl\", with data.input_field and data.label_field")
            }
        }
        return "csv"
    }
}
