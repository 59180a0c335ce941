import CKernels

/// Multi-layer recurrent networks (`nn.LSTM` / `nn.GRU` with `batch_first=True`): the stack,
/// its buffers, dropout between layers, the input projection and the weight gradients, shared by
/// every cell. Each cell's time loops, forward and backward side by side, and its one step function
/// (called by its forward loop and by `step`) are in LSTM.swift, GRU.swift and RNN.swift.
///
/// Legend: B batch, T steps, I input features (of the layer), H hidden, L layers, G gates (4 LSTM, 3 GRU).
/// Inside, sequences are step-major, (T, B, ·), so that every step is one contiguous (B, ·) block
/// and the weight gradients are one sgemm over all T·B rows.
///
/// Parameters per layer k, PyTorch's names and shapes: `{name}.weight_ih_l{k}` (G·H, I),
/// `{name}.weight_hh_l{k}` (G·H, H), `{name}.bias_ih_l{k}` (G·H), `{name}.bias_hh_l{k}` (G·H),
/// all uniform ±1/√H. Gate order: LSTM i, f, g, o; GRU r, z, n; the Elman RNN has one (its output).
public enum RecurrentCell: String, Codable, CaseIterable {
    case lstm, gru, rnn
    public var gateCount: Int {
        switch self {
        case .lstm: return 4
        case .gru: return 3
        case .rnn: return 1
        }
    }
    /// b_ih + b_hh can be added once before the time loop (the GRU's b_hn sits inside r ⊙ (…)).
    var combinesBiases: Bool { self != .gru }
}

/// The Elman RNN's activation (`nn.RNN(nonlinearity=...)`).
public enum RecurrentNonlinearity: String, Codable, CaseIterable {
    case tanh, relu
}

/// How a caller's sequence buffer is laid out.
public enum SequenceLayout {
    case batchFirst  // (B, T, F)
    case stepMajor   // (T, B, F)
}

/// The state a recurrent stack starts from or ends in: h (L, B, H) and, for an LSTM, c (L, B, H).
public final class RecurrentState {
    public let hidden: FloatBuffer  // (L, B, H)
    public let cell: FloatBuffer    // (L, B, H); empty for a GRU
    public let layers: Int, batch: Int, width: Int

    public init(cell kind: RecurrentCell, layers: Int, batch: Int, width: Int) {
        self.layers = layers
        self.batch = batch
        self.width = width
        hidden = FloatBuffer(count: layers * batch * width)
        cell = FloatBuffer(count: kind == .lstm ? layers * batch * width : 0)
    }

    public func zero() { hidden.zero(); cell.zero() }

    /// The (L, B, H) state of rows (B, L·H), row b holding layer 0's h, then layer 1's, ...: a
    /// Linear's output viewed as PyTorch's `.view(B, L, H).transpose(0, 1)`. The LSTM's c is zero.
    public static func fromRows(_ rows: UnsafePointer<Float>, cell kind: RecurrentCell, layers L: Int, batch B: Int, width H: Int) -> RecurrentState {
        let state = RecurrentState(cell: kind, layers: L, batch: B, width: H)
        for b in 0..<B { for l in 0..<L { (state.hidden.pointer + (l * B + b) * H).update(from: rows + (b * L + l) * H, count: H) } }
        return state
    }

    /// The gradient of the rows (B, L·H) before the tanh that made `activated` (B, L·H), the rows
    /// of this state: from this state's h gradient, d rows = dh (1 − tanh²).
    public func gradientOfRows(_ dRows: FloatBuffer, throughTanh activated: FloatBuffer) {
        let L = layers, B = batch, H = width
        dRows.resize(B * L * H)
        for b in 0..<B {
            for l in 0..<L {
                for j in 0..<H {
                    let y = activated[(b * L + l) * H + j]
                    dRows[(b * L + l) * H + j] = hidden[(l * B + b) * H + j] * (1 - y * y)
                }
            }
        }
    }

    /// Copies lane `from` of `other` into lane `to` of this state (all layers).
    public func copyLane(_ to: Int, from other: RecurrentState, lane from: Int) {
        for l in 0..<layers {
            (hidden.pointer + (l * batch + to) * width).update(from: other.hidden.pointer + (l * other.batch + from) * width, count: width)
            if cell.count > 0 {
                (cell.pointer + (l * batch + to) * width).update(from: other.cell.pointer + (l * other.batch + from) * width, count: width)
            }
        }
    }
}

/// Keys for dropout masks that do not depend on which rank holds a sample.
public struct DropoutContext {
    public let seed: UInt64
    public let step: Int
    public let sampleKeys: [UInt64]  // (B): a global index per batch row
    public init(seed: UInt64, step: Int, sampleKeys: [UInt64]) {
        self.seed = seed
        self.step = step
        self.sampleKeys = sampleKeys
    }

    /// Keys for a step-major (T, B) block of rows, in stream `layer`.
    func keys(layer: Int, steps: Int) -> Dropout.Keys {
        var rows = [UInt64]()
        rows.reserveCapacity(steps * sampleKeys.count)
        for t in 0..<steps { for key in sampleKeys { rows.append(key << 24 | UInt64(t)) } }
        return Dropout.Keys(seed: seed, stream: UInt64(step) << 16 | UInt64(layer), rowKeys: rows)
    }

    /// The keys of the (B) rows of time step `t` alone: those rows of `keys(layer:steps:)`.
    func keys(layer: Int, at t: Int) -> Dropout.Keys {
        Dropout.Keys(seed: seed, stream: UInt64(step) << 16 | UInt64(layer), rowKeys: sampleKeys.map { $0 << 24 | UInt64(t) })
    }
}

public final class RecurrentNetwork {
    public struct LayerWeights {
        public let inputWeight, recurrentWeight, inputBias, recurrentBias: ParameterRef
    }

    /// The prefix of its parameters' names ("lstm", "gru", "encoder", "layers.1").
    public let name: String
    public let cellKind: RecurrentCell
    /// The Elman RNN's activation (ignored by the LSTM and the GRU).
    public let nonlinearity: RecurrentNonlinearity
    public let inputSize: Int
    public let hiddenSize: Int
    public let layerCount: Int
    public let dropout: Dropout
    public let layers: [LayerWeights]
    /// Distinguishes this stack's dropout streams from other layers' in the same model.
    public let dropoutStream: Int

    // Forward buffers, kept for backward. Sized for the last forward's (B, T).
    public private(set) var batch = 0
    public private(set) var steps = 0
    var layerInput: [FloatBuffer]   // (T, B, I_l): layer 0's input, and dropped-out inputs of upper layers
    var gates: [FloatBuffer]        // (T, B, G·H): activated gates (LSTM i,f,g,o; GRU r,z,n)
    var hidden: [FloatBuffer]       // (T+1, B, H): slot 0 the initial h, slot t+1 the output of step t
    var cell: [FloatBuffer]         // LSTM (T+1, B, H): slot 0 the initial c. GRU (T, B, H): W_hn h + b_hn
                                    // RNN: empty
    var tanhCell: [FloatBuffer]     // LSTM (T, B, H): tanh(c_t)
    var masks: [FloatBuffer]        // (T, B, H): dropout mask on layer l's output, l < L-1
    var droppedOut = false

    // Backward scratch, shared by the layers.
    let dGates = FloatBuffer()            // (T, B, G·H): gradient of the gate pre-activations
    let dRecurrentGates = FloatBuffer()   // GRU (T, B, G·H): the same seen from W_hh (n gate times r)
    let dOutput = FloatBuffer()           // (T, B, H): gradient of the current layer's outputs
    let dLayerInput = FloatBuffer()       // (T, B, I_l)
    let dHidden = FloatBuffer()           // (B, H): carried gradient of h
    let dCell = FloatBuffer()             // (B, H): carried gradient of c (LSTM)
    let stepScratch = FloatBuffer()       // (B, G·H): GRU recurrent gates of one step; (B, H) backward scratch
    let combinedBias = FloatBuffer()      // (G·H): b_ih + b_hh for the LSTM
    /// The current layer's W_hh, packed for its time loop (W_hhᵀ forward, W_hh backward).
    let packedRecurrent = PackedMatrix()
    /// Step-by-step passes: every layer's W_ihᵀ and W_hhᵀ packed, and the bias a step starts from
    /// (b_ih + b_hh for the LSTM, b_ih for the GRU).
    var packedStepWeights: [(input: PackedMatrix, recurrent: PackedMatrix, bias: FloatBuffer)] = []
    var stepCapacity = 0
    var stepDropout: DropoutContext?

    /// The last forward's outputs of every layer, (T+1, B, H) each (slot 0 the initial state), for
    /// `--debug`'s non-finite check.
    public var layerOutputs: [(name: String, values: FloatBuffer)] {
        hidden.enumerated().map { ("\(name) layer \($0.offset) output", $0.element) }
    }

    /// Called every few steps of back-propagation through time, so gradient all-reduces already
    /// under way make progress while backward runs.
    public var progressHook: (() -> Void)?

    /// - firstLayerIndex, nameSuffix: PyTorch's names of one level of a bidirectional stack
    ///   (`weight_ih_l1_reverse` is level 1's reverse direction, a one-layer network of its own).
    public init(_ name: String, cell kind: RecurrentCell, nonlinearity: RecurrentNonlinearity = .tanh,
                inputSize: Int, hiddenSize: Int, layers: Int = 1, dropout: Float = 0, dropoutStream: Int = 0,
                firstLayerIndex: Int = 0, nameSuffix: String = "", layout: inout ParameterLayout) {
        self.name = name
        cellKind = kind
        self.nonlinearity = nonlinearity
        self.inputSize = inputSize
        self.hiddenSize = hiddenSize
        layerCount = layers
        self.dropout = Dropout(probability: dropout)
        self.dropoutStream = dropoutStream
        let gh = kind.gateCount * hiddenSize
        let bound = Initialization.uniform(bound: 1 / Float(hiddenSize).squareRoot())
        self.layers = (0..<layers).map { k in
            let level = "l\(k + firstLayerIndex)\(nameSuffix)", width = k == 0 ? inputSize : hiddenSize
            return LayerWeights(
                inputWeight: layout.add("\(name).weight_ih_\(level)", shape: [gh, width], initialization: bound),
                recurrentWeight: layout.add("\(name).weight_hh_\(level)", shape: [gh, hiddenSize],
                                            initialization: bound),
                inputBias: layout.add("\(name).bias_ih_\(level)", shape: [gh], initialization: bound),
                recurrentBias: layout.add("\(name).bias_hh_\(level)", shape: [gh], initialization: bound))
        }
        layerInput = (0..<layers).map { _ in FloatBuffer() }
        gates = (0..<layers).map { _ in FloatBuffer() }
        hidden = (0..<layers).map { _ in FloatBuffer() }
        cell = (0..<layers).map { _ in FloatBuffer() }
        tanhCell = (0..<layers).map { _ in FloatBuffer() }
        masks = (0..<layers).map { _ in FloatBuffer() }
    }

    func inputWidth(_ l: Int) -> Int { l == 0 ? inputSize : hiddenSize }

    /// Layer l's input rows (T, B, I_l).
    func input(_ l: Int) -> UnsafeMutablePointer<Float> {
        l == 0 || droppedOut ? layerInput[l].pointer : hidden[l - 1].pointer + batch * hiddenSize
    }

    /// The top layer's outputs, step-major (T, B, H), valid until the next forward.
    public var outputs: UnsafeMutablePointer<Float> { hidden[layerCount - 1].pointer + batch * hiddenSize }

    // MARK: forward

    /// Runs the stack over `input` (B, T, I) or (T, B, I) as `inputLayout` says.
    /// - output: every step's top-layer h, (B, T, H) or (T, B, H) as `outputLayout` says; nil to skip the copy.
    /// - initial: (L, B, H) states to start from; nil for zeros. final: receives the last states.
    /// - dropout: between layers when given and p > 0 (training); nil means inference.
    public func forward(_ output: UnsafeMutablePointer<Float>?, outputLayout: SequenceLayout = .batchFirst,
                        _ input: UnsafePointer<Float>, inputLayout: SequenceLayout = .batchFirst,
                        batch B: Int, steps T: Int, initial: RecurrentState?, final: RecurrentState?,
                        parameters p: ParameterArena, dropout context: DropoutContext? = nil) {
        batch = B
        steps = T
        let H = hiddenSize
        droppedOut = context != nil && dropout.probability > 0 && layerCount > 1
        sizeBuffers(steps: T)
        copySequence(layerInput[0].pointer, .stepMajor, input, inputLayout, batch: B, steps: T, width: inputSize)

        for l in 0..<layerCount {
            setInitialState(l, from: initial)
            if l > 0 && droppedOut {
                let keys = context!.keys(layer: dropoutStream * 64 + l, steps: T)
                dropout.forward(layerInput[l].pointer, mask: masks[l - 1].pointer, hidden[l - 1].pointer + B * H,
                                rows: T * B, width: H, keys: keys)
            }
            switch cellKind {
            case .lstm: lstmForwardLayer(l, parameters: p)
            case .gru: gruForwardLayer(l, parameters: p)
            case .rnn: rnnForwardLayer(l, parameters: p)
            }
            if let final { copyFinalState(l, into: final) }
        }
        if let output { copySequence(output, outputLayout, outputs, .stepMajor, batch: B, steps: T, width: H) }
    }

    /// Every buffer of a pass over `steps` steps of the current batch (kept contents up to there).
    func sizeBuffers(steps T: Int) {
        let B = batch, H = hiddenSize, G = cellKind.gateCount * H
        for l in 0..<layerCount {
            if l == 0 || droppedOut { layerInput[l].resize(T * B * inputWidth(l), keep: true) }
            gates[l].resize(T * B * G, keep: true)
            hidden[l].resize((T + 1) * B * H, keep: true)
            let cellSteps = cellKind == .lstm ? T + 1 : cellKind == .gru ? T : 0
            cell[l].resize(cellSteps * B * H, keep: true)
            if cellKind == .lstm { tanhCell[l].resize(T * B * H, keep: true) }
            if droppedOut && l < layerCount - 1 { masks[l].resize(T * B * H, keep: true) }
        }
    }

    /// Slot 0 of layer l's h (and c) from `initial`, or zeros.
    func setInitialState(_ l: Int, from initial: RecurrentState?) {
        let n = batch * hiddenSize
        if let initial { hidden[l].pointer.update(from: initial.hidden.pointer + l * n, count: n) } else { hidden[l].pointer.update(repeating: 0, count: n) }
        guard cellKind == .lstm else { return }
        if let initial { cell[l].pointer.update(from: initial.cell.pointer + l * n, count: n) } else { cell[l].pointer.update(repeating: 0, count: n) }
    }

    /// Layer l's state after the last step into `final`.
    func copyFinalState(_ l: Int, into final: RecurrentState) {
        let n = batch * hiddenSize, T = steps
        (final.hidden.pointer + l * n).update(from: hidden[l].pointer + T * n, count: n)
        if cellKind == .lstm { (final.cell.pointer + l * n).update(from: cell[l].pointer + T * n, count: n) }
    }

    // MARK: one step at a time

    /// Starts a pass run one time step at a time (`step`), for inputs that are not known before the
    /// previous step's output is (a decoder fed its own output). It fills the buffers `forward`
    /// fills, step by step, so `backward` then runs over the steps taken exactly as after a
    /// whole-sequence pass, and the outputs agree with `forward` on the same inputs (up to float
    /// rounding: the input projection is one product per step instead of one for all steps).
    /// - capacity: the most steps the pass will take. initial: (L, B, H) states, nil for zeros.
    public func beginSteps(batch B: Int, capacity T: Int, initial: RecurrentState?, parameters p: ParameterArena,
                           dropout context: DropoutContext? = nil) {
        batch = B
        steps = 0
        stepCapacity = T
        stepDropout = context
        let H = hiddenSize, G = cellKind.gateCount * H
        droppedOut = context != nil && dropout.probability > 0 && layerCount > 1
        while packedStepWeights.count < layerCount { packedStepWeights.append((PackedMatrix(), PackedMatrix(), FloatBuffer())) }
        sizeBuffers(steps: T)
        for l in 0..<layerCount {
            setInitialState(l, from: initial)
            // W_ihᵀ and W_hhᵀ packed once for the pass; the bias every step starts from.
            let w = layers[l], (input, recurrent, bias) = packedStepWeights[l]
            input.pack(p.value(w.inputWeight), ldb: inputWidth(l), transposed: true, depth: inputWidth(l), columns: G)
            recurrent.pack(p.value(w.recurrentWeight), ldb: H, transposed: true, depth: H, columns: G)
            bias.resize(G)
            let bih = p.value(w.inputBias), bhh = p.value(w.recurrentBias)
            for j in 0..<G { bias[j] = cellKind.combinesBiases ? bih[j] + bhh[j] : bih[j] }
        }
        stepScratch.resize(B * G)
    }

    /// Runs time step `steps` of every layer on x (B, I) and returns the top layer's output (B, H),
    /// valid until the pass's buffers are resized.
    @discardableResult
    public func step(_ x: UnsafePointer<Float>, parameters p: ParameterArena) -> UnsafePointer<Float> {
        let B = batch, H = hiddenSize, G = cellKind.gateCount * H, t = steps
        precondition(t < stepCapacity, "step \(t) beyond the capacity \(stepCapacity) given to beginSteps")
        (layerInput[0].pointer + t * B * inputSize).update(from: x, count: B * inputSize)
        for l in 0..<layerCount {
            let width = inputWidth(l)
            var input = UnsafePointer(layerInput[l].pointer + t * B * width)  // (B, I_l)
            if l > 0 {
                let below = hidden[l - 1].pointer + (t + 1) * B * H             // (B, H): layer l−1's output at t
                if droppedOut {
                    dropout.forward(layerInput[l].pointer + t * B * H, mask: masks[l - 1].pointer + t * B * H, below,
                                    rows: B, width: H, keys: stepDropout!.keys(layer: dropoutStream * 64 + l, at: t))
                } else {
                    input = UnsafePointer(below)
                }
            }
            let (inputWeights, recurrentWeights, bias) = packedStepWeights[l]
            let g = gates[l].pointer + t * B * G          // (B, G): the input part, as forward's projection
            broadcastRows(g, bias.pointer, rowCount: B, width: G)
            gemmPacked(g, ldc: G, input, lda: width, inputWeights, m: B, accumulate: true)
            // The rest is the cell's own step, the one its whole-sequence loop runs.
            switch cellKind {
            case .lstm: lstmStep(layer: l, at: t, packedRecurrent: recurrentWeights)
            case .gru: gruStep(layer: l, at: t, packedRecurrent: recurrentWeights,
                               recurrentBias: p.value(layers[l].recurrentBias))
            case .rnn: rnnStep(layer: l, at: t, packedRecurrent: recurrentWeights)
            }
        }
        steps = t + 1
        return UnsafePointer(hidden[layerCount - 1].pointer + steps * B * H)
    }

    /// Ends a step-by-step pass: `final` receives the states after the last step taken.
    public func endSteps(final: RecurrentState?) {
        // The buffers hold the steps taken, as after `forward` over them.
        sizeBuffers(steps: steps)
        if let final { for l in 0..<layerCount { copyFinalState(l, into: final) } }
    }

    /// gates (T·B, G·H) ← bias + x W_ihᵀ: the input projection of all steps in one sgemm.
    func projectInput(_ l: Int, bias: UnsafePointer<Float>, parameters p: ParameterArena) {
        let G = cellKind.gateCount * hiddenSize, rows = steps * batch, width = inputWidth(l)
        broadcastRows(gates[l].pointer, bias, rowCount: rows, width: G)
        gemm(gates[l].pointer, ldc: G, input(l), lda: width, p.value(layers[l].inputWeight), ldb: width, transposeB: true,
             m: rows, n: G, k: width, beta: 1)
    }

    /// gates ← (b_ih + b_hh) + x W_ihᵀ for cells whose biases add before the time loop (LSTM, RNN).
    func projectInputWithBothBiases(_ l: Int, parameters p: ParameterArena) {
        let G = cellKind.gateCount * hiddenSize, w = layers[l]
        combinedBias.resize(G)
        let bih = p.value(w.inputBias), bhh = p.value(w.recurrentBias)
        for j in 0..<G { combinedBias[j] = bih[j] + bhh[j] }
        projectInput(l, bias: combinedBias.pointer, parameters: p)
    }

    // MARK: backward

    /// Back-propagation through time. Adds every weight gradient into the arena.
    /// - dInput: receives the gradient of the input, laid out as `inputLayout`; nil when not needed.
    /// - dOutput: gradient of every step's top-layer output (nil: none, only the final state matters).
    /// - dFinal: gradient of the final states (nil: zero). dInitial: receives the gradient of the initial states.
    public func backward(_ dInput: UnsafeMutablePointer<Float>?, inputLayout: SequenceLayout = .batchFirst,
                         _ dOutputGiven: UnsafePointer<Float>?, outputLayout: SequenceLayout = .batchFirst,
                         dFinal: RecurrentState? = nil, dInitial: RecurrentState? = nil,
                         parameters p: ParameterArena) {
        let B = batch, T = steps, H = hiddenSize, G = cellKind.gateCount * H
        dGates.resize(T * B * G)
        if cellKind == .gru { dRecurrentGates.resize(T * B * G) }
        dOutput.resize(T * B * H)
        dHidden.resize(B * H)
        dCell.resize(B * H)
        stepScratch.resize(B * G)
        if let dOutputGiven {
            copySequence(dOutput.pointer, .stepMajor, dOutputGiven, outputLayout, batch: B, steps: T, width: H)
        } else {
            dOutput.zero()
        }
        for l in stride(from: layerCount - 1, through: 0, by: -1) {
            if let dFinal { dHidden.pointer.update(from: dFinal.hidden.pointer + l * B * H, count: B * H) } else { dHidden.zero() }
            if cellKind == .lstm {
                if let dFinal { dCell.pointer.update(from: dFinal.cell.pointer + l * B * H, count: B * H) } else { dCell.zero() }
            }
            switch cellKind {
            case .lstm: lstmBackwardLayer(l, parameters: p)
            case .gru: gruBackwardLayer(l, parameters: p)
            case .rnn: rnnBackwardLayer(l, parameters: p)
            }
            if let dInitial {
                (dInitial.hidden.pointer + l * B * H).update(from: dHidden.pointer, count: B * H)
                if cellKind == .lstm { (dInitial.cell.pointer + l * B * H).update(from: dCell.pointer, count: B * H) }
            }
            // Weight gradients as single sgemms over all T·B rows.
            let w = layers[l], width = inputWidth(l), rows = T * B
            let dRec = cellKind == .gru ? dRecurrentGates.pointer : dGates.pointer
            gemm(p.gradient(w.inputWeight), ldc: width, dGates.pointer, lda: G, transposeA: true, input(l), ldb: width,
                 m: G, n: width, k: rows, beta: 1)
            gemm(p.gradient(w.recurrentWeight), ldc: H, dRec, lda: G, transposeA: true, hidden[l].pointer, ldb: H,
                 m: G, n: H, k: rows, beta: 1)
            addColumnSums(p.gradient(w.inputBias), dGates.pointer, rowCount: rows, width: G)
            addColumnSums(p.gradient(w.recurrentBias), dRec, rowCount: rows, width: G)
            p.finishGradients(from: w.inputWeight)
            if l == 0 && dInput == nil { break }
            dLayerInput.resize(rows * width)
            gemm(dLayerInput.pointer, ldc: width, dGates.pointer, lda: G, p.value(w.inputWeight), ldb: width,
                 m: rows, n: width, k: G)
            if l > 0 {
                if droppedOut {
                    dropout.backward(dOutput.pointer, dLayerInput.pointer, mask: masks[l - 1].pointer, count: rows * H)
                } else {
                    dOutput.pointer.update(from: dLayerInput.pointer, count: rows * H)
                }
            } else if let dInput {
                copySequence(dInput, inputLayout, dLayerInput.pointer, .stepMajor, batch: B, steps: T, width: inputSize)
            }
        }
    }
}

/// Copies a (B, T, F) or (T, B, F) sequence into the other layout (or the same one).
public func copySequence(_ dst: UnsafeMutablePointer<Float>, _ dstLayout: SequenceLayout,
                         _ src: UnsafePointer<Float>, _ srcLayout: SequenceLayout, batch B: Int, steps T: Int, width F: Int) {
    if dstLayout == srcLayout {
        if UnsafePointer(dst) != src { dst.update(from: src, count: B * T * F) }
        return
    }
    for b in 0..<B {
        for t in 0..<T {
            let stepMajorRow = (t * B + b) * F, batchFirstRow = (b * T + t) * F
            if dstLayout == .stepMajor {
                (dst + stepMajorRow).update(from: src + batchFirstRow, count: F)
            } else {
                (dst + batchFirstRow).update(from: src + stepMajorRow, count: F)
            }
        }
    }
}
