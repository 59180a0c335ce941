import Foundation

/// Times full char-LSTM training steps (forward, backward, clip, Adam) and the sgemm rate of this
/// machine in the same run, so the two can be compared as a ratio on a noisy machine.
public enum Benchmark {
    public struct Configuration: CustomStringConvertible {
        public var vocabulary, embedding, hidden, layers, batch, steps: Int
        public init(vocabulary: Int, embedding: Int, hidden: Int, layers: Int, batch: Int, steps: Int) {
            self.vocabulary = vocabulary; self.embedding = embedding; self.hidden = hidden
            self.layers = layers; self.batch = batch; self.steps = steps
        }
        public var description: String { "V=\(vocabulary) E=\(embedding) H=\(hidden) L=\(layers) B=\(batch) T=\(steps)" }

        /// sgemm floating-point operations of one training step (as ../shared/bench/lstm_gemm_bound.c counts them).
        public var flopsPerStep: Double {
            let n = Double(batch * steps), g = 4.0 * Double(hidden), h = Double(hidden)
            var flops = 0.0
            for l in 0..<layers {
                let input = Double(l == 0 ? embedding : hidden)
                flops += 2 * (3 * n * g * h + 3 * n * g * input)
            }
            return flops + 2 * 3 * n * Double(vocabulary) * h
        }

        /// The three configurations `launch/compare-torch` also runs in PyTorch (../shared/bench/torch_ref.py).
        public static let standard: [Configuration] = [
            Configuration(vocabulary: 96, embedding: 256, hidden: 256, layers: 2, batch: 32, steps: 64),
            Configuration(vocabulary: 65, embedding: 128, hidden: 128, layers: 2, batch: 50, steps: 50),
            Configuration(vocabulary: 96, embedding: 64, hidden: 64, layers: 1, batch: 16, steps: 32),
        ]
    }

    public struct Result {
        public let configuration: Configuration
        public let medianStepSeconds: Double
        public var tokensPerSecond: Double { Double(configuration.batch * configuration.steps) / medianStepSeconds }
        public var gigaflops: Double { configuration.flopsPerStep / medianStepSeconds / 1e9 }
    }

    static func now() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }

    /// Median seconds of `repeats` calls of `body` after `warmup` calls.
    public static func median(repeats: Int, warmup: Int = 2, _ body: () throws -> Void) rethrows -> Double {
        for _ in 0..<warmup { try body() }
        var times: [Double] = []
        for _ in 0..<repeats {
            let t0 = now()
            try body()
            times.append(now() - t0)
        }
        times.sort()
        return times[times.count / 2]
    }

    /// sgemm GFLOP/s on (m × k) · (k × n), the shape of a large input projection.
    public static func sgemmRate(m: Int = 2048, n: Int = 1024, k: Int = 256) -> Double {
        let a = FloatBuffer(count: m * k), b = FloatBuffer(count: k * n), c = FloatBuffer(count: m * n)
        for i in 0..<a.count { a[i] = Float(i % 13) * 0.01 }
        for i in 0..<b.count { b[i] = Float(i % 7) * 0.01 }
        let seconds = median(repeats: 9) {
            gemm(c.pointer, ldc: n, a.pointer, lda: k, b.pointer, ldb: k, transposeB: true, m: m, n: n, k: k)
        }
        return 2 * Double(m * n * k) / seconds / 1e9
    }

    /// Median time of full training steps on random ids, one BLAS thread as configured by the caller.
    public static func trainingStep(_ c: Configuration, repeats: Int = 10) throws -> Result {
        let model = CharLanguageModel(.init(vocabularySize: c.vocabulary, embeddingSize: c.embedding, hiddenSize: c.hidden, layers: c.layers))
        model.parameters.initialize(seed: 0)
        let random = CounterRandom(seed: 0, purpose: .synthetic)
        let count = c.batch * c.steps
        let ids = (0..<count).map { Int32(random.integer(below: c.vocabulary, stream: 0, index: UInt64($0))) }
        let targets = (0..<count).map { Int32(random.integer(below: c.vocabulary, stream: 1, index: UInt64($0))) }
        let adam = Optimizer(OptimizerSettings(.adam, learningRate: 1e-3), parameterCount: model.parameters.count)
        let state = model.makeState(batch: c.batch)
        let seconds = try median(repeats: repeats, warmup: 3) {
            model.parameters.zeroGradients()
            state.zero()
            try model.forward(ids: ids, batch: c.batch, steps: c.steps, state: state)
            let total = try model.loss(targets: targets, gradient: true)
            let normalization = Float(1 / total.count)
            let clipping = GradientClipping.clippingCoefficient(model.parameters, gradientScale: normalization, maxNorm: 5).coefficient
            adam.step(model.parameters, learningRate: 1e-3, gradientScale: normalization * clipping)
        }
        return Result(configuration: c, medianStepSeconds: seconds)
    }

    public struct DistributedResult {
        public let world: Int
        public let medianStepSeconds: Double
        public let medianWaitSeconds: Double
        public let globalTokensPerStep: Int
        /// Every rank's median seconds per phase of the step.
        public let phasesPerRank: [[String: Double]]
        public var tokensPerSecond: Double { Double(globalTokensPerStep) / medianStepSeconds }
        public var waitShare: Double { medianWaitSeconds / medianStepSeconds }
    }

    /// The trainer's step on every rank of `communicator`, each rank with a batch of `c.batch` lanes
    /// (so the global batch grows with the ranks, as DDP with a fixed per-process batch): forward,
    /// backward with the bucketed all-reduce under way, loss totals, scaling, clip, Adam.
    /// `lanes`: this participant's batch (default `c.batch`; the worker benchmark splits the batch).
    public static func distributedStep(_ c: Configuration, communicator: Communicator, lanes: Int? = nil, repeats: Int = 10) throws -> DistributedResult {
        let model = CharLanguageModel(.init(vocabularySize: c.vocabulary, embeddingSize: c.embedding, hiddenSize: c.hidden, layers: c.layers))
        let random = CounterRandom(seed: UInt64(communicator.rank), purpose: .synthetic)
        let batch = lanes ?? c.batch
        let count = batch * c.steps
        let ids = (0..<count).map { Int32(random.integer(below: c.vocabulary, stream: 0, index: UInt64($0))) }
        let targets = (0..<count).map { Int32(random.integer(below: c.vocabulary, stream: 1, index: UInt64($0))) }
        let state = model.makeState(batch: batch)
        return try timedSteps(model, unitsPerStep: count, communicator: communicator, repeats: repeats, forward: {
            state.zero()
            try model.forward(ids: ids, batch: batch, steps: c.steps, state: state)
        }, backward: {
            try model.loss(targets: targets, gradient: true)
        })
    }

    /// The sequence-classifier workload of `launch/compare-torch`: a recurrent body (by default one
    /// LSTM layer, hidden 64) over curves of 1500 steps and one feature, max pooling, 7 labels,
    /// sigmoid binary cross-entropy, a batch of 32 per rank. `launch/seqtrain_torch.py bench` with
    /// the same flags is its PyTorch side.
    public struct ClassifierWorkload: CustomStringConvertible {
        public var batch = 32, steps = 1500, features = 1, hidden = 64, labels = 7
        public var cell: RecurrentCell
        /// num_layers of the recurrent entry.
        public var layers: Int
        /// PyTorch's bidirectional=True: the head reads both directions, 2H.
        public var bidirectional: Bool

        public init(cell: RecurrentCell = .lstm, layers: Int = 1, bidirectional: Bool = false) {
            self.cell = cell
            self.layers = layers
            self.bidirectional = bidirectional
        }

        /// The stack a config's one `[[model.layers]]` table with these keys resolves to.
        public var stack: [LayerSpec] {
            [.recurrent(RecurrentSpec(cell: cell, hidden: hidden, layers: layers, bidirectional: bidirectional))]
        }

        /// One unidirectional layer is today's fixed model, named as the shorthand names it
        /// (`lstm.weight_ih_l0`); any other is the stack `[[model.layers]]` builds (`layers.0.…`).
        public var naming: StackNaming { layers == 1 && !bidirectional ? .shorthand : .indexed(prefix: "layers") }

        public var description: String {
            let body = (bidirectional ? "bidirectional " : "") + (layers > 1 ? "\(layers)-layer " : "")
                + cell.rawValue.uppercased()
            return "sequence classifier: \(body) H=\(hidden), T=\(steps), F=\(features), \(labels) labels, B=\(batch), "
                + "max pooling, BCE, Adam"
        }
    }

    /// The classifier of `workload`, as the sequence_classifier kind builds it from that stack.
    public static func classifierModel(_ w: ClassifierWorkload) -> SequenceClassifier {
        SequenceClassifier(stack: w.stack, naming: w.naming, inputSize: w.features, labels: w.labels, pooling: .max)
    }

    /// `samples`: this participant's batch (default the workload's; the worker benchmark splits the batch).
    public static func classifierStep(_ w: ClassifierWorkload = ClassifierWorkload(), communicator: Communicator,
                                      samples: Int? = nil, repeats: Int = 5) throws -> DistributedResult {
        let batch = samples ?? w.batch
        // Refused before anything is allocated when the stack's buffers would not fit (a large --layers).
        let what = "the layer buffers of the \(w.description)"
        let perStep = try LayerSpec.bufferFloatsPerStep(w.stack, input: w.features, what: what)
        try MemoryCheck.require(floats: try MemoryCheck.product([batch, w.steps, perStep], what: what), what: what,
                                fix: "give a smaller --layers")
        let model = classifierModel(w)
        let (inputs, labels) = SyntheticSets.curves(count: batch, length: w.steps, seed: UInt64(communicator.rank + 1))
        // Standardized, as the classifier kinds read data.
        var data = LabelledData(inputs: inputs, count: batch, steps: w.steps, features: w.features,
                                lengths: [Int](repeating: w.steps, count: batch), labels: nil, source: "curves")
        Standardization(fitting: data).apply(&data)
        let x = data.inputs
        let bce = try BinaryCrossEntropyLoss()
        let dLogits = FloatBuffer(count: batch * w.labels)
        return try timedSteps(model, unitsPerStep: batch, communicator: communicator, repeats: repeats, forward: {
            x.withUnsafeBufferPointer { model.forward($0.baseAddress!, batch: batch, steps: w.steps) }
        }, backward: {
            let total = try labels.withUnsafeBufferPointer {
                try bce.evaluate(dLogits.pointer, logits: model.logits.pointer, targets: $0.baseAddress!, rows: batch,
                                 classes: w.labels)
            }
            model.backward(dLogits.pointer)
            return total
        })
    }

    /// The trainer's step on `workers` threads of this process (one BLAS thread each, as the caller
    /// set), which share the global batch of the workload as `training.workers` does: the char
    /// LSTM `c`, or with `c` nil the sequence-classifier workload `classifier`. One worker is the
    /// plain single-process step.
    public static func workerStep(_ c: Configuration?, classifier w: ClassifierWorkload = ClassifierWorkload(),
                                  workers: Int, repeats: Int) throws -> DistributedResult {
        let global = c?.batch ?? w.batch
        guard workers >= 1, global % workers == 0 else {
            throw SeqTrainError("--workers \(workers): the batch of \(global) does not divide among \(workers) workers")
        }
        func measure(_ communicator: Communicator) throws -> DistributedResult {
            if let c { return try distributedStep(c, communicator: communicator, lanes: global / workers, repeats: repeats) }
            return try classifierStep(w, communicator: communicator, samples: global / workers, repeats: repeats)
        }
        guard workers > 1 else { return try measure(SingleProcess()) }
        let group = try WorkerGroup(size: workers)
        final class Box: @unchecked Sendable { var result: DistributedResult? }
        let box = Box()
        let errors = group.run(inner: nil, timeout: 600) { communicator in
            let result = try measure(communicator)
            if communicator.worker == 0 { box.result = result }
        }
        if let error = errors.compactMap({ $0 }).first(where: { !($0 is WorkerGroup.Stopped) }) { throw error }
        guard let result = box.result else { throw SeqTrainError("the worker benchmark returned nothing") }
        return result
    }

    /// Median time of `repeats` training steps of `model` on every rank of `communicator` (after
    /// three warm-up steps), and every rank's median time per phase.
    static func timedSteps(_ model: TrainableModel, unitsPerStep: Int, communicator: Communicator, repeats: Int,
                           forward: () throws -> Void, backward: () throws -> LossTotal) throws -> DistributedResult {
        let parameters = model.parameters
        parameters.initialize(seed: 0)
        let adam = Optimizer(OptimizerSettings(.adam, learningRate: 1e-3), parameterCount: parameters.count)
        // As the trainer: worker threads share one copy and each updates its slice.
        let shared = try communicator.shareWithinProcess([parameters.values] + adam.stateBuffers)
        parameters.useValues(shared[0])
        adam.useState(Array(shared.dropFirst()))
        let share = communicator.updateRange(count: parameters.count)
        let threads = communicator as? ThreadCommunicator
        let reducer = GradientReducer(communicator: communicator, arena: parameters)
        if reducer.isActive {
            for stack in model.recurrentStacks { stack.progressHook = { reducer.progress() } }
            parameters.onGradientsFinished = { [weak reducer] in reducer?.ready(from: $0) }
        }
        // Per-step phase times on this rank: forward, backward (loss included), wait for the
        // all-reduce, loss totals, update (scale, clip, Adam).
        var phases: [String: [Double]] = [:]
        var step = 0
        let seconds = try median(repeats: repeats, warmup: 3) {
            try communicator.beginStep(step)
            step += 1
            var mark = now()
            func lap(_ phase: String) {
                let t = now()
                phases[phase, default: []].append(t - mark)
                mark = t
            }
            parameters.zeroGradients()
            reducer.beginStep()
            try forward()
            lap("forward")
            let local = try backward()
            lap("backward")
            let summed = threads?.reductionSeconds ?? 0
            try reducer.finish()
            lap("allreduce_wait")
            // Of the wait, the time this worker spent adding and copying its slices.
            if let threads { phases["reduction", default: []].append(threads.reductionSeconds - summed) }
            var totals = [local.sum, local.count]
            try communicator.allReduceSum(&totals)
            lap("loss_totals")
            let normalization = Float(1 / totals[1])
            let clipping = GradientClipping.clippingCoefficient(parameters, gradientScale: normalization, maxNorm: 5).coefficient
            adam.step(parameters, range: share, learningRate: 1e-3, gradientScale: normalization * clipping)
            try communicator.synchronizeProcess()
            lap("update")
        }
        func medianOf(_ values: [Double]) -> Double {
            let timed = Array(values.suffix(repeats)).sorted()
            return timed.isEmpty ? 0 : timed[timed.count / 2]
        }
        let names = ["forward", "backward", "allreduce_wait", "reduction", "loss_totals", "update"]
        let mine = names.map { medianOf(phases[$0] ?? []) }
        let gathered = try communicator.allGather(mine.withUnsafeBytes { Array($0) })
        let perRank: [[String: Double]] = gathered.map { bytes in
            var values = [Double](repeating: 0, count: names.count)
            values.withUnsafeMutableBytes { $0.copyBytes(from: bytes.prefix($0.count)) }
            return Dictionary(uniqueKeysWithValues: zip(names, values).filter { $0.0 != "reduction" || threads != nil })
        }
        return DistributedResult(world: communicator.size, medianStepSeconds: seconds,
                                 medianWaitSeconds: medianOf(phases["allreduce_wait"] ?? []),
                                 globalTokensPerStep: unitsPerStep * communicator.size, phasesPerRank: perRank)
    }
}
