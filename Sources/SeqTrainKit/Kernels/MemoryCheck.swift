import Foundation

/// Sizes that come from outside (config, checkpoint, data) are checked before anything is
/// allocated: products with overflow checks, and a float count compared with this machine's memory,
/// so a mistyped size is an error naming it, not a trap in an allocator.
public enum MemoryCheck {
    /// The product of `factors`, or an error naming `what` when it overflows or a factor is negative.
    public static func product(_ factors: [Int], what: String) throws -> Int {
        var total = 1
        for f in factors {
            let (p, overflow) = total.multipliedReportingOverflow(by: f)
            guard f >= 0, !overflow else { throw SeqTrainError("\(what): \(factors.map(String.init).joined(separator: " × ")) is too large to allocate") }
            total = p
        }
        return total
    }

    /// The sum of `terms`, or an error naming `what` when it overflows.
    public static func sum(_ terms: [Int], what: String) throws -> Int {
        var total = 0
        for t in terms {
            let (s, overflow) = total.addingReportingOverflow(t)
            guard !overflow else { throw SeqTrainError("\(what) is too large to allocate") }
            total = s
        }
        return total
    }

    /// Throws when `floats` float32 values would take more than half of this machine's memory.
    public static func require(floats: Int, what: String, fix: String) throws {
        let available = Double(ProcessInfo.processInfo.physicalMemory) / 2
        let needed = Double(floats) * 4
        guard needed <= available else {
            throw SeqTrainError(String(format: "%@ would need %.1f GB, more than half of this machine's %.1f GB; %@",
                                       what, needed / 1e9, available * 2 / 1e9, fix))
        }
    }

    /// OpenBLAS takes 32-bit matrix dimensions: every GEMM dimension (rows × steps of a batch,
    /// widths, vocabulary) must fit, or the conversion would trap.
    public static func requireMatrixDimensions(_ dimensions: [(value: Int, what: String)]) throws {
        for (value, what) in dimensions where value > Int(Int32.max) {
            throw SeqTrainError("\(what) = \(value) exceeds the \(Int32.max) rows or columns a BLAS matrix may have; lower it")
        }
    }

    /// Parameters of an L-layer recurrent stack over `input` features (an upper bound: every layer
    /// as wide as the wider of its input and H), checked for overflow; `what` names the keys.
    public static func recurrentStack(input: Int, hidden: Int, layers: Int, cell: RecurrentCell = .lstm, what: String) throws -> Int {
        let gates = try product([cell.gateCount, hidden], what: what)
        let perLayer = try product([gates, try sum([max(input, hidden), hidden, 2], what: what)], what: what)
        return try product([perLayer, layers], what: what)
    }

    /// Floats of a batch's recurrent buffers (gates, states and their gradients: about 8 of width
    /// 4H per layer and step), checked against this machine's memory.
    public static func requireRecurrentBuffers(rows: Int, steps: Int, hidden: Int, layers: Int, what: String, fix: String) throws {
        try requireMatrixDimensions([(try product([rows, steps], what: "training.batch_size × steps"), "training.batch_size × the sequence length")])
        let floats = try product([rows, steps, 8, 4, hidden, layers], what: "training.batch_size × steps × model.hidden × model.layers")
        try require(floats: floats, what: what, fix: fix)
    }

    /// The layer buffers of a batch of `rows` sequences of `steps` through `specs` (the stack at
    /// config key `what`), checked against this machine's memory; and the `shortest` sequence
    /// long enough for the stack's convolutions to give an output step.
    static func requireStackBuffers(_ specs: [LayerSpec], input: Int, rows: Int, steps: Int, what: String,
                                    source: String, shortest: Int, otherFix: String = "") throws {
        let perStep = try LayerSpec.bufferFloatsPerStep(specs, input: input,
                                                        what: "the buffers per step of the layer stack (\(what))")
        let cells = try product([rows, steps], what: "training.batch_size × steps")
        try requireMatrixDimensions([(cells, "training.batch_size × the sequence length")])
        let floats = try product([cells, perStep], what: "training.batch_size × steps × \(what)")
        try require(floats: floats, what: "the layer buffers of a batch of \(rows) sequences of \(steps) steps",
                    fix: "lower training.batch_size or the sizes of \(what)" + otherFix)
        if LayerStack.outputSteps(specs, shortest) == 0 {
            throw SeqTrainError("""
                \(source): \(what): the shortest training sequence has \(shortest) steps, too few for the \
                stack's convolutions to give one output step; use padding = "same" or "causal", a smaller \
                kernel_size, dilation or stride, or drop the shortest sequences
                """)
        }
    }

    /// A loader's check before it builds a model from a checkpoint's config: `estimate` (an upper
    /// bound, at most about twice the true count) against the values the file's tensors hold, so
    /// a damaged config asking for a huge model is refused before anything is allocated.
    public static func requireStored(_ stored: Int?, estimate: Int) throws {
        guard let stored, estimate > 2 * stored + 4096 else { return }
        throw SeqTrainError("its seqtrain.config describes a model of about \(estimate) parameters but its tensors hold \(stored) values: config and weights disagree, the checkpoint is damaged")
    }
}

/// Batches of `batchSize` that cover `count` items, the last one partial (no overflow for any size).
func batchCount(_ count: Int, batchSize: Int) -> Int {
    count / batchSize + (count % batchSize == 0 ? 0 : 1)
}
