import Foundation

/// Drawing a token from a row of logits: what `sample` and `generate` use, and what a sequence
/// generator trained with scheduled sampling feeds itself.
public enum TokenSampling {
    /// A token id by inverse CDF of softmax(logits / temperature) at `uniform` in [0, 1).
    /// Temperature 0 is argmax; `topK` > 0 keeps only the k most likely tokens. Ties go to the
    /// lower id, so the choice is the same on every machine.
    public static func choose(logits: UnsafePointer<Float>, count: Int, temperature: Double, topK: Int = 0, uniform: Double) -> Int32 {
        if temperature == 0 {
            var best = 0
            for k in 1..<max(count, 1) where logits[k] > logits[best] { best = k }
            return Int32(best)
        }
        var order = Array(0..<count)
        order.sort { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
        let kept = topK > 0 ? Array(order.prefix(topK)) : order
        let top = Double(logits[kept[0]])
        let weights = kept.map { exp((Double(logits[$0]) - top) / temperature) }
        let threshold = uniform * weights.reduce(0, +)
        var running = 0.0
        for (k, w) in zip(kept, weights) {
            running += w
            if running > threshold { return Int32(k) }
        }
        return Int32(kept.last!)
    }
}

/// Sampling and evaluation of a trained char-LM: probabilities exist only here, at inference.
extension LoadedCharLM {
    /// `length` characters after `prime`. Temperature 0 is argmax; `topK` > 0 keeps only the k most
    /// likely characters; draws come from (seed, position), so a seed gives the same text anywhere.
    public func sample(prime: String, length: Int, temperature: Double, topK: Int, seed: UInt64) throws -> String {
        var text = ""
        try sample(prime: prime, length: length, temperature: temperature, topK: topK, seed: seed) { text += $0 }
        return text
    }

    /// Generates `length` characters after `prime`, handing them to `emit` a few thousand at a
    /// time as they are made, so a long sample is written as it goes instead of held whole.
    public func sample(prime: String, length: Int, temperature: Double, topK: Int, seed: UInt64,
                       emit: (String) -> Void) throws {
        let strict = config.text("data.unknown") == "error"
        let encoded = try vocabulary.encode(Array(prime.unicodeScalars), strict: strict, source: "--prime")
        if let warning = Vocabulary.skippedWarning(encoded.skipped, source: "--prime") { printWarning(warning) }
        var primeIds = encoded.ids
        if primeIds.isEmpty { primeIds = [vocabulary.id("\n") ?? 0] }
        let state = model.makeState(batch: 1)
        try model.forward(ids: primeIds, batch: 1, steps: primeIds.count, state: state)
        let random = CounterRandom(seed: seed, purpose: .sampling)
        let V = vocabulary.count
        var out: [Int32] = []
        var lastRow = model.logits.pointer + (primeIds.count - 1) * V
        for i in 0..<length {
            guard (0..<V).allSatisfy({ lastRow[$0].isFinite }) else {
                throw model.parameters.overflowError(source: path, what: "the next-character score")
            }
            let next = TokenSampling.choose(logits: lastRow, count: V, temperature: temperature, topK: topK,
                                   uniform: Double(random.uniform(stream: 0, index: UInt64(i))))
            out.append(next)
            if out.count == 4_096 {
                emit(vocabulary.decode(out))
                out.removeAll(keepingCapacity: true)
            }
            try model.forward(ids: [next], batch: 1, steps: 1, state: state)
            lastRow = model.logits.pointer
        }
        emit(vocabulary.decode(out))
    }

    public struct Evaluation {
        public let loss: Double
        public var perplexity: Double { exp(loss) }
        public let characters: Int
        public let skipped: Int
    }

    /// Loss per character of the text in `paths`, read as the checkpoint's validation was: the same
    /// number of lanes and seq_len, state carried within each lane.
    public func evaluate(paths: [String]) throws -> Evaluation {
        let files = try TextFiles.expand(paths, key: "--data")
        var text: [Unicode.Scalar] = []
        for file in files { text += try TextFiles.readUTF8(file) }
        let strict = config.text("data.unknown") == "error"
        let (ids, skipped) = try vocabulary.encode(text, strict: strict, source: paths.joined(separator: ", "))
        guard ids.count >= 2 else { throw SeqTrainError("--data: \(ids.count) known characters; evaluation needs at least 2") }
        var lanes = config.integer("training.batch_size"), steps = config.integer("training.seq_len")
        if let json = metadata["seqtrain.eval"]?.data(using: .utf8) {
            guard let object = (try? JSONSerialization.jsonObject(with: json)) as? [String: Int],
                  let given = object["lanes"], let length = object["seq_len"], given >= 1, (1...1 << 24).contains(length) else {
                throw SeqTrainError("\(path): seqtrain.eval must be {\"lanes\": n, \"seq_len\": m} with n and m positive; the checkpoint is damaged")
            }
            lanes = given
            steps = length
        }
        lanes = CharLanguageModel.evaluationLanes(count: ids.count, steps: steps, preferred: lanes)
        let total = try model.streamLoss(ids, lanes: lanes, steps: steps, laneRange: 0..<lanes)
        guard total.mean.isFinite else { throw model.parameters.overflowError(source: path, what: "the loss over --data") }
        return Evaluation(loss: total.mean, characters: Int(total.count), skipped: skipped)
    }
}
