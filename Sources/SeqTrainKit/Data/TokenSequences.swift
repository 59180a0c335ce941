import Foundation

/// How text is cut into sequences and each sequence into tokens (the seq2seq kind's `[data]`).
public struct TokenRules: Codable, Equatable {
    /// "lines": every non-empty line is a sequence; "words": every word of the text is one.
    public var sequences: String
    /// "characters" (Unicode scalars) or "words" (split at white space).
    public var tokens: String

    public init(sequences: String, tokens: String) {
        self.sequences = sequences
        self.tokens = tokens
    }

    /// The sequences of `text`. A word is a run of non-space characters with the punctuation at
    /// its ends taken off ("(N," is "N"), so words of prose become clean sequences.
    public func sequences(of text: String) -> [String] {
        if sequences == "words" {
            return text.split(whereSeparator: { $0.isWhitespace }).map { word in
                String(word.trimmingCharacters(in: CharacterSet.punctuationCharacters.union(.symbols)))
            }.filter { !$0.isEmpty }
        }
        return text.split(whereSeparator: \.isNewline).map { String($0).trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// The tokens of one sequence.
    public func tokens(of sequence: String) -> [String] {
        tokens == "words" ? sequence.split(whereSeparator: { $0.isWhitespace }).map(String.init)
            : sequence.unicodeScalars.map { String($0) }
    }

    /// Tokens joined back into text.
    public func join(_ tokens: [String]) -> String { tokens.joined(separator: self.tokens == "words" ? " " : "") }
}

/// Token ids with four reserved ones: padding, start, end and unknown.
public struct TokenVocabulary: Equatable {
    public static let padding: Int32 = 0, start: Int32 = 1, end: Int32 = 2, unknown: Int32 = 3
    public static let reserved = ["<pad>", "<s>", "</s>", "<unk>"]

    /// Every token by id, the reserved ones first.
    public let tokens: [String]
    private let index: [String: Int32]

    /// The reserved tokens, then the tokens seen at least `minCount` times, sorted by their scalars.
    public init(counting sequences: [[String]], minCount: Int) {
        var counts: [String: Int] = [:]
        for sequence in sequences { for token in sequence { counts[token, default: 0] += 1 } }
        let kept = counts.filter { $0.value >= minCount && !Self.reserved.contains($0.key) }.keys
            .sorted { $0.unicodeScalars.lexicographicallyPrecedes($1.unicodeScalars) { $0.value < $1.value } }
        tokens = Self.reserved + kept
        index = Dictionary(uniqueKeysWithValues: tokens.enumerated().map { ($1, Int32($0)) })
    }

    /// Tokens as a checkpoint stored them; a repeated token or missing reserved ones are errors.
    public init(stored: [String], source: String) throws {
        guard stored.count >= Self.reserved.count, Array(stored.prefix(Self.reserved.count)) == Self.reserved,
              stored.count <= Int(Int32.max) else {
            throw SeqTrainError("\(source): the vocabulary must start with \(Self.reserved.joined(separator: ", ")) and hold at most \(Int32.max) tokens")
        }
        var index: [String: Int32] = [:]
        for (i, token) in stored.enumerated() {
            guard index[token] == nil else { throw SeqTrainError("\(source): the vocabulary lists the token \"\(token.prefix(20))\" twice") }
            index[token] = Int32(i)
        }
        tokens = stored
        self.index = index
    }

    public var count: Int { tokens.count }

    /// Ids of `tokens`; unknown tokens map to <unk> (counted in the second value).
    public func encode(_ sequence: [String]) -> (ids: [Int32], unknown: Int) {
        var unknown = 0
        let ids = sequence.map { token -> Int32 in
            if let id = index[token] { return id }
            unknown += 1
            return Self.unknown
        }
        return (ids, unknown)
    }

    /// The tokens of `ids` up to the end token (reserved ones left out).
    public func decode(_ ids: [Int32]) -> [String] {
        var out: [String] = []
        for id in ids {
            if id == Self.end { break }
            if id >= Int32(Self.reserved.count) && Int(id) < tokens.count { out.append(tokens[Int(id)]) }
        }
        return out
    }
}

/// Token sequences of text files, read as the seq2seq kind's `[data]` keys say.
public struct TokenSequences {
    /// Each sequence's tokens, in file order.
    public var sequences: [[String]]
    /// Sequences left out because they were longer than the limit.
    public var tooLong = 0
    public var source: String

    /// Reads `patterns` (files or globs), cut by `rules`; with `unique` each distinct sequence once
    /// (first-seen order); sequences of more than `maxLength` tokens are left out and counted.
    public init(patterns: [String], key: String, rules: TokenRules, unique: Bool, maxLength: Int) throws {
        let files = try TextFiles.expand(patterns, key: key)
        guard !files.isEmpty else { throw SeqTrainError("\(key): no text files given") }
        var seen = Set<String>()
        sequences = []
        for file in files {
            var text = String.UnicodeScalarView()
            text.append(contentsOf: try TextFiles.readUTF8(file))
            for sequence in rules.sequences(of: String(text)) {
                if unique && !seen.insert(sequence).inserted { continue }
                let tokens = rules.tokens(of: sequence)
                if tokens.count > maxLength { tooLong += 1; continue }
                sequences.append(tokens)
            }
        }
        source = files.count == 1 ? files[0] : "\(files[0]) and \(files.count - 1) more"
        guard !sequences.isEmpty else {
            throw SeqTrainError("\(key): \(source) holds no sequences of 1 to \(maxLength) tokens (data.max_length)\(tooLong > 0 ? "; \(tooLong) were longer" : "")")
        }
    }

    public init(sequences: [[String]], source: String) {
        self.sequences = sequences
        self.source = source
    }

    public var count: Int { sequences.count }

    public func subset(_ indices: [Int]) -> TokenSequences { TokenSequences(sequences: indices.map { sequences[$0] }, source: source) }
}

/// Batches grouped by length: every epoch the sequences are shuffled by a permutation of (seed,
/// epoch), cut into pools of 50 batches, each pool sorted by length and cut into batches, and the
/// batches shuffled; so a batch holds sequences of about one length and little is padding, while
/// every epoch sees a new order. The same on every rank: a global batch is a list of sample ids
/// (−1 past the data's end) and a rank takes its rows of it.
public struct BucketedBatches {
    public let lengths: [Int]
    public let batchSize: Int
    public let seed: UInt64
    public private(set) var epoch = -1
    public private(set) var batches: [[Int]] = []

    public init(lengths: [Int], batchSize: Int, seed: UInt64) {
        self.lengths = lengths
        self.batchSize = batchSize
        self.seed = seed
    }

    public var batchesPerEpoch: Int { batchCount(lengths.count, batchSize: batchSize) }

    public mutating func begin(epoch e: Int) {
        guard epoch != e else { return }
        epoch = e
        let random = CounterRandom(seed: seed, purpose: .shuffle)
        let order = random.permutation(lengths.count, stream: UInt64(e))
        let pool = 50 * batchSize
        var cut: [[Int]] = []
        for start in stride(from: 0, to: order.count, by: pool) {
            let members = order[start..<min(start + pool, order.count)].enumerated()
                .sorted { lengths[$0.element] != lengths[$1.element] ? lengths[$0.element] < lengths[$1.element] : $0.offset < $1.offset }
                .map(\.element)
            for b in stride(from: 0, to: members.count, by: batchSize) {
                let batch = Array(members[b..<min(b + batchSize, members.count)])
                cut.append(batch + [Int](repeating: -1, count: batchSize - batch.count))
            }
        }
        batches = random.permutation(cut.count, stream: UInt64(e) | 1 << 40).map { cut[$0] }
    }
}
