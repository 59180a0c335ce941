import XCTest
import SeqTrainKit

extension GradientCheckTests {
    /// Every parameter of the generator (plain and variational, both cells, two layers) against
    /// finite differences of the masked cross-entropy plus the KL term, the noise of the
    /// reparameterization held fixed; sources of different lengths.
    func testSequenceGeneratorGradients() throws {
        for variational in [false, true] {
            for cell in RecurrentCell.allCases {
                let (V, B) = (7, 3)
                let model = SequenceGenerator(cell: cell, vocabulary: V, embedding: 3, hidden: 4, latent: 2, layers: 2, variational: variational)
                model.parameters.initialize(seed: 21)
                let sources: [Int32] = [4, 5, 6, 4, 5, 0, 6, 0, 0], lengths = [3, 2, 1]
                let inputs: [Int32] = [1, 4, 5, 6, 1, 4, 5, 0, 1, 6, 0, 0]           // (B, T = 4)
                let targets: [Int32] = [4, 5, 6, 2, 4, 5, 2, 0, 6, 2, 0, 0]
                let mask: [Float] = [1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 0, 0]
                let T = 4
                let noise = randomValues(B * 2, seed: 22)
                let stepTargets = transposeForTest(targets, rows: B, steps: T), stepMask = transposeForTest(mask, rows: B, steps: T)
                let ce = try CrossEntropyLoss()
                let dLogits = FloatBuffer(count: T * B * V)
                let weights: [Float] = [1, 1, 1]
                func loss(gradient: Bool) throws -> Double {
                    try model.encode(sources, batch: B, steps: 3, lengths: lengths)
                    if variational { model.useLatent(noise: noise) }
                    try model.decode(inputs: inputs, steps: T)
                    let total = try withPointer(stepTargets) { t in
                        try withPointer(stepMask) { m in
                            try ce.evaluate(gradient ? dLogits.pointer : nil, logits: model.logits.pointer, targets: t, mask: m, rows: T * B, classes: V)
                        }
                    }
                    if gradient { model.backward(dLogits.pointer, klWeight: 0.7, rowWeights: weights) }
                    return total.sum + 0.7 * model.klDivergence(rowWeights: weights)
                }
                try checkParameters(model.parameters, what: "\(variational ? "variational" : "plain") \(cell) ", loss: { try loss(gradient: false) }) {
                    _ = try loss(gradient: true)
                }
            }
        }
    }
}

func transposeForTest<T>(_ values: [T], rows: Int, steps: Int) -> [T] {
    var out = values
    for r in 0..<rows { for t in 0..<steps { out[t * rows + r] = values[r * steps + t] } }
    return out
}

final class Seq2SeqModelTests: XCTestCase {
    /// The KL term and the reparameterization against their formulas.
    func testKLAndReparameterizationFollowTheirFormulas() throws {
        let model = SequenceGenerator(cell: .gru, vocabulary: 6, embedding: 3, hidden: 4, latent: 2, variational: true)
        model.parameters.initialize(seed: 3)
        try model.encode([4, 5, 4, 0], batch: 2, steps: 2, lengths: [2, 1])
        let mu = model.mean.array, lv = model.logVariance.array
        let noise: [Float] = [0.5, -1.25, 2, 0.1]
        model.useLatent(noise: noise)
        for i in 0..<4 {
            XCTAssertEqual(model.latent[i], mu[i] + expf(0.5 * lv[i]) * noise[i], accuracy: 1e-6, "z = μ + σ ε")
        }
        var expected = 0.0
        for i in 0..<4 { expected += -0.5 * (1 + Double(lv[i]) - Double(mu[i] * mu[i]) - exp(Double(lv[i]))) }
        XCTAssertEqual(model.klDivergence(rowWeights: [1, 1]), expected, accuracy: 1e-6)
        // A row with weight 0 counts nothing; N(0, I) itself has no divergence.
        var second = 0.0
        for i in 2..<4 { second += -0.5 * (1 + Double(lv[i]) - Double(mu[i] * mu[i]) - exp(Double(lv[i]))) }
        XCTAssertEqual(model.klDivergence(rowWeights: [0, 1]), second, accuracy: 1e-6)
        model.setLatent([0, 0, 0, 0], batch: 2)
        XCTAssertEqual(model.klDivergence(rowWeights: [1, 1]), 0, accuracy: 1e-12)
    }

    /// Each scheduled-sampling schedule against its formula.
    func testTeacherForcingSchedulesFollowTheirFormulas() {
        for i in [0, 1, 10, 500, 5000, 100_000] {
            let x = Double(i)
            var s = TeacherForcingSchedule(kind: .constant)
            s.start = 0.8
            XCTAssertEqual(s.probability(step: i), 0.8)
            s = TeacherForcingSchedule(kind: .linear)
            s.start = 1; s.slope = 2e-4; s.minimum = 0.1
            XCTAssertEqual(s.probability(step: i), max(0.1, 1 - 2e-4 * x), accuracy: 1e-12, "linear at \(i)")
            s = TeacherForcingSchedule(kind: .exponential)
            s.base = 0.999; s.minimum = 0.05
            XCTAssertEqual(s.probability(step: i), max(0.05, pow(0.999, x)), accuracy: 1e-12, "exponential at \(i)")
            s = TeacherForcingSchedule(kind: .inverseSigmoid)
            s.k = 300; s.minimum = 0
            XCTAssertEqual(s.probability(step: i), 300 / (300 + exp(x / 300)), accuracy: 1e-12, "inverse sigmoid at \(i)")
        }
        // Inverse sigmoid falls through one half near k ln k.
        var s = TeacherForcingSchedule(kind: .inverseSigmoid)
        s.k = 300
        let half = Int(300 * log(300.0))
        XCTAssertGreaterThan(s.probability(step: half - 100), 0.5)
        XCTAssertLessThan(s.probability(step: half + 100), 0.5)
    }

    /// Decoding one step at a time with the true tokens fed gives the teacher-forced pass's logits
    /// and gradients.
    func testStepwiseDecodingEqualsTeacherForcing() throws {
        for cell in RecurrentCell.allCases {
            let (V, B, T) = (9, 2, 5)
            let model = SequenceGenerator(cell: cell, vocabulary: V, embedding: 4, hidden: 6, latent: 3, layers: 2, dropout: 0.3)
            model.parameters.initialize(seed: 8)
            let inputs: [Int32] = [1, 4, 5, 6, 7, 1, 8, 8, 4, 0]
            let dropout = DropoutContext(seed: 5, step: 2, sampleKeys: [3, 9])
            let dLogits = (0..<(T * B * V)).map { Float(($0 * 37) % 11) / 11 - 0.5 }
            var results: [([Float], [Float])] = []
            for stepwise in [false, true] {
                try model.encode([4, 5, 6, 8, 0, 0], batch: B, steps: 3, lengths: [3, 1], dropout: dropout)
                if stepwise {
                    model.beginDecoding(capacity: T + 2, dropout: dropout)
                    for t in 0..<T { _ = try model.decodeStep([inputs[t], inputs[T + t]]) }
                    model.endDecoding()
                } else {
                    try model.decode(inputs: inputs, steps: T, dropout: dropout)
                }
                let logits = Array(model.logits.array.prefix(T * B * V))
                model.parameters.zeroGradients()
                dLogits.withUnsafeBufferPointer { model.backward($0.baseAddress!) }
                results.append((logits, model.parameters.gradients.array))
            }
            assertClose(results[1].0, results[0].0, "\(cell): logits", absolute: 1e-6, relative: 1e-5)
            assertClose(results[1].1, results[0].1, "\(cell): gradients", absolute: 1e-6, relative: 1e-5)
        }
    }

    /// Batches grouped by length: every epoch holds each sequence once, batches of similar
    /// lengths, in an order that changes with the epoch and repeats with the seed.
    func testLengthGroupedBatchesCoverEverySequenceOnce() {
        let lengths = (0..<1000).map { 1 + ($0 * 7919) % 40 }
        var batches = BucketedBatches(lengths: lengths, batchSize: 16, seed: 4)
        batches.begin(epoch: 0)
        let first = batches.batches
        XCTAssertEqual(first.count, batches.batchesPerEpoch)
        XCTAssertEqual(first.flatMap { $0 }.filter { $0 >= 0 }.sorted(), Array(0..<1000))
        let spread = first.map { b in b.filter { $0 >= 0 }.map { lengths[$0] } }.map { $0.max()! - $0.min()! }
        XCTAssertLessThan(Double(spread.reduce(0, +)) / Double(spread.count), 4, "a batch holds sequences of about one length")
        batches.begin(epoch: 1)
        XCTAssertNotEqual(batches.batches, first)
        var again = BucketedBatches(lengths: lengths, batchSize: 16, seed: 4)
        again.begin(epoch: 0)
        XCTAssertEqual(again.batches, first)
    }

    /// A short sequence padded in a batch with a longer one gives the loss and gradients of the
    /// same sequence alone.
    func testPaddedPositionsChangeNeitherLossNorGradients() throws {
        let V = 9
        let model = SequenceGenerator(cell: .lstm, vocabulary: V, embedding: 4, hidden: 5, latent: 3, layers: 2, variational: true)
        model.parameters.initialize(seed: 4)
        func run(_ sequences: [[Int32]], noise: [Float]) throws -> Double {
            let batch = try makeBatch(sequences)
            try model.encode(batch.sources, batch: sequences.count, steps: batch.steps - 1, lengths: sequences.map(\.count))
            model.useLatent(noise: noise)
            try model.decode(inputs: batch.inputs, steps: batch.steps)
            let dLogits = FloatBuffer(count: batch.steps * sequences.count * V)
            let total = try withPointer(batch.targets) { t in
                try withPointer(batch.mask) { m in
                    try CrossEntropyLoss().evaluate(dLogits.pointer, logits: model.logits.pointer, targets: t, mask: m, rows: batch.steps * sequences.count, classes: V)
                }
            }
            let weights = [Float](repeating: 1, count: sequences.count)
            model.backward(dLogits.pointer, klWeight: 1, rowWeights: weights)
            return total.sum + model.klDivergence(rowWeights: weights)
        }
        let noise: [Float] = [0.3, -0.2, 1.1, -0.7, 0.4, 0.9]
        model.parameters.zeroGradients()
        let together = try run([[4, 5, 6, 7], [8]], noise: noise)
        let padded = model.parameters.gradients.array
        model.parameters.zeroGradients()
        let apart = try run([[4, 5, 6, 7]], noise: Array(noise[0..<3])) + run([[8]], noise: Array(noise[3..<6]))
        XCTAssertEqual(together, apart, accuracy: 1e-5)
        assertClose(padded, model.parameters.gradients.array, "gradients", absolute: 1e-5)
    }

    /// Sources (B, S) padded with 0, decoder inputs (B, S+1) from <s>, targets ending in </s> and
    /// their mask, step-major.
    func makeBatch(_ sequences: [[Int32]]) throws -> (sources: [Int32], inputs: [Int32], targets: [Int32], mask: [Float], steps: Int) {
        let S = sequences.map(\.count).max()!, T = S + 1, B = sequences.count
        var sources = [Int32](repeating: 0, count: B * S), inputs = [Int32](repeating: 0, count: B * T)
        var targets = inputs, mask = [Float](repeating: 0, count: B * T)
        for (b, s) in sequences.enumerated() {
            inputs[b * T] = TokenVocabulary.start
            for (t, id) in s.enumerated() { sources[b * S + t] = id; inputs[b * T + t + 1] = id; targets[b * T + t] = id }
            targets[b * T + s.count] = TokenVocabulary.end
            for t in 0...s.count { mask[b * T + t] = 1 }
        }
        return (sources, inputs, transposeForTest(targets, rows: B, steps: T), transposeForTest(mask, rows: B, steps: T), T)
    }

    func testTokenRulesCutTextIntoSequencesAndTokens() {
        let words = TokenRules(sequences: "words", tokens: "characters")
        XCTAssertEqual(words.sequences(of: "The (N, T) shape, “quoted” — and `code`."), ["The", "N", "T", "shape", "quoted", "and", "code"])
        XCTAssertEqual(words.tokens(of: "héllo"), ["h", "é", "l", "l", "o"])
        let lines = TokenRules(sequences: "lines", tokens: "words")
        XCTAssertEqual(lines.sequences(of: "a b c\n\n  d e \n"), ["a b c", "d e"])
        XCTAssertEqual(lines.tokens(of: "a b  c"), ["a", "b", "c"])
        XCTAssertEqual(lines.join(["a", "b"]), "a b")
        let vocabulary = TokenVocabulary(counting: [["b", "a"], ["a", "c"]], minCount: 2)
        XCTAssertEqual(vocabulary.tokens, TokenVocabulary.reserved + ["a"])
        XCTAssertEqual(vocabulary.encode(["a", "b"]).ids, [4, TokenVocabulary.unknown])
        XCTAssertEqual(vocabulary.decode([4, 4, TokenVocabulary.end, 4]), ["a", "a"])
    }
}
