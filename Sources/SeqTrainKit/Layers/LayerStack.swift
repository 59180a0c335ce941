import Foundation

/// One entry of a model's layer stack, as a config writes it (`[[model.layers]]`, PyTorch's layers).
public enum LayerSpec: Equatable {
    /// `nn.LSTM`, `nn.GRU` or `nn.RNN` (batch_first), one or more layers, optionally bidirectional.
    case recurrent(RecurrentSpec)
    /// `nn.Conv1d` over the steps, channels last inside, then an activation.
    case conv1d(ConvolutionSpec)
    /// `nn.Linear` applied at every step (Keras's TimeDistributed(Dense)), then an activation.
    case dense(units: Int, activation: Activation)
    /// `nn.Dropout` on every step's features.
    case dropout(probability: Double)

    /// The features of every output step, given those of the input.
    public func outputWidth(input: Int) -> Int {
        switch self {
        case .recurrent(let r): return r.outputWidth
        case .conv1d(let c): return c.filters
        case .dense(let units, _): return units
        case .dropout: return input
        }
    }

    /// Whether every sequence keeps its number of steps through this entry.
    public var keepsSteps: Bool {
        guard case .conv1d(let c) = self else { return true }
        return c.stride == 1 && (c.padding != .valid || c.kernelSize == 1)
    }

    /// Output steps of an input of `steps` valid steps (0: too short for the layer).
    public func outputSteps(_ steps: Int) -> Int {
        guard case .conv1d(let c) = self else { return steps }
        return c.outputSteps(steps)
    }
}

public struct RecurrentSpec: Equatable {
    public var cell: RecurrentCell
    public var nonlinearity: RecurrentNonlinearity
    public var hidden: Int
    public var layers: Int
    public var bidirectional: Bool
    /// Between its layers, as `nn.LSTM(dropout=)`.
    public var dropout: Double

    public init(cell: RecurrentCell, nonlinearity: RecurrentNonlinearity = .tanh, hidden: Int, layers: Int = 1,
                bidirectional: Bool = false, dropout: Double = 0) {
        self.cell = cell
        self.nonlinearity = nonlinearity
        self.hidden = hidden
        self.layers = layers
        self.bidirectional = bidirectional
        self.dropout = dropout
    }

    public var outputWidth: Int { bidirectional ? 2 * hidden : hidden }
}

/// How a sequence layer's outputs see the input around the current step.
/// - `nn.Sequential` over a whole stack sees future steps only through `same` convolutions and
///   bidirectional layers; a stateful or forecasting model refuses both.
public enum ConvolutionPadding: String, CaseIterable {
    /// No padding: (T − dilation·(k − 1) − 1) / stride + 1 outputs.
    case valid
    /// PyTorch's padding="same" (stride 1): T outputs, total padding dilation·(k − 1), the smaller half left.
    case same
    /// dilation·(k − 1) zeros on the left only: output t sees inputs up to t (Keras's padding="causal").
    case causal
}

public struct ConvolutionSpec: Equatable {
    public var filters: Int
    public var kernelSize: Int
    public var stride: Int
    public var dilation: Int
    public var padding: ConvolutionPadding
    public var activation: Activation

    public init(filters: Int, kernelSize: Int, stride: Int = 1, dilation: Int = 1, padding: ConvolutionPadding = .valid,
                activation: Activation = .identity) {
        self.filters = filters
        self.kernelSize = kernelSize
        self.stride = stride
        self.dilation = dilation
        self.padding = padding
        self.activation = activation
    }

    /// Steps one output covers: dilation·(k − 1) + 1.
    public var span: Int { dilation * (kernelSize - 1) + 1 }

    /// Zeros before the first input step.
    public var leftPadding: Int {
        switch padding {
        case .valid: return 0
        case .same: return (span - 1) / 2
        case .causal: return span - 1
        }
    }

    /// Outputs of `steps` input steps (0 when too short).
    public func outputSteps(_ steps: Int) -> Int {
        guard steps > 0 else { return 0 }
        switch padding {
        case .valid: return steps < span ? 0 : (steps - span) / stride + 1
        case .same: return steps
        case .causal: return (steps - 1) / stride + 1
        }
    }
}

/// Parameter names of a stack: today's shorthand models name their one recurrent entry by its cell
/// (`lstm.weight_ih_l0`, as `s.lstm = nn.LSTM(...)`); a stack from `[[model.layers]]` is an
/// `nn.ModuleList` named `prefix` (`layers.0.weight_ih_l0`, `layers.1.weight`).
public enum StackNaming: Equatable {
    case shorthand
    /// A shorthand model whose one recurrent entry has its own name (`encoder.weight_ih_l0`).
    case named(String)
    case indexed(prefix: String)

    func name(of entry: Int, _ spec: LayerSpec) -> String {
        switch self {
        case .shorthand:
            if case .recurrent(let r) = spec { return r.cell.rawValue }
            return "layers.\(entry)"
        case .named(let name): return name
        case .indexed(let prefix): return "\(prefix).\(entry)"
        }
    }
}

/// One layer of a stack over step-major sequences (T, B, ·) whose samples have valid lengths.
/// Forward writes every output step; the stack then zeroes each sample's steps past its length, so
/// a layer's input past a sample's end is always zero (as a freshly zero-padded batch), whatever
/// the batch's longest sample.
protocol SequenceLayer: AnyObject {
    var spec: LayerSpec { get }
    var outputWidth: Int { get }
    /// y (T′, B, O) ← layer(x (T, B, I)). x stays valid until backward (the stack owns it).
    func forward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, batch B: Int, steps T: Int,
                 lengths: [Int], parameters p: ParameterArena, dropout: DropoutContext?)
    /// dx (T, B, I) ← the gradient of the input, from dy (T′, B, O); adds the weight gradients.
    /// dx nil: not needed (the stack's first layer).
    func backward(_ dx: UnsafeMutablePointer<Float>?, _ dy: UnsafePointer<Float>, parameters p: ParameterArena)
    var recurrentNetworks: [RecurrentNetwork] { get }
}

/// A stack of sequence layers, the body every kind's model takes from the config.
/// Legend: B batch, T input steps, T_i and O_i the steps and features after entry i.
public final class LayerStack {
    public let specs: [LayerSpec]
    public let inputWidth: Int
    public let outputWidth: Int
    /// Features at the end of the output that come from the reverse direction of a bidirectional
    /// top layer (0 otherwise): their final state is at step 0, not at the last valid step.
    public let reverseWidth: Int
    let entries: [SequenceLayer]
    /// Names for `--debug`'s non-finite check.
    let entryNames: [String]

    let input = FloatBuffer()                      // (T, B, I): the batch, step-major, zero past each length
                                                   // (unused when the caller's input is so already)
    private var outputs: [FloatBuffer]             // (T_i, B, O_i) per entry
    private var dOutputs: [FloatBuffer]            // (T_i, B, O_i) per entry, below the top
    private var lengths: [[Int]] = []              // (entries + 1, B): valid steps of the input and of each output
    private var steps: [Int] = []                  // (entries + 1): T, then every T_i
    private var batch = 0

    /// `firstDropoutStream` numbers the dropout streams of the entries from there on, so that two
    /// stacks of one model (an encoder and a decoder) draw different masks.
    public init(_ specs: [LayerSpec], inputWidth: Int, naming: StackNaming, firstDropoutStream: Int = 1,
                layout: inout ParameterLayout) {
        precondition(!specs.isEmpty, "a layer stack needs at least one layer")
        self.specs = specs
        self.inputWidth = inputWidth
        var width = inputWidth
        var entries: [SequenceLayer] = []
        for (i, spec) in specs.enumerated() {
            let name = naming.name(of: i, spec), stream = firstDropoutStream + i
            switch spec {
            case .recurrent(let r):
                if r.bidirectional {
                    entries.append(BidirectionalRecurrentLayer(name, r, inputWidth: width, dropoutStream: stream,
                                                               layout: &layout))
                } else {
                    entries.append(RecurrentLayer(name, r, inputWidth: width, dropoutStream: stream, layout: &layout))
                }
            case .conv1d(let c): entries.append(Convolution1DLayer(name, c, inputWidth: width, layout: &layout))
            case .dense(let units, let activation):
                entries.append(DenseLayer(name, units: units, activation: activation, inputWidth: width,
                                          layout: &layout))
            case .dropout(let p): entries.append(DropoutLayer(probability: Float(p), width: width, stream: stream))
            }
            width = spec.outputWidth(input: width)
        }
        self.entries = entries
        entryNames = specs.indices.map { naming.name(of: $0, specs[$0]) }
        outputWidth = width
        if case .recurrent(let r) = specs.last!, r.bidirectional { reverseWidth = r.hidden } else { reverseWidth = 0 }
        outputs = specs.map { _ in FloatBuffer() }
        dOutputs = specs.map { _ in FloatBuffer() }
    }

    /// Valid output steps of a sample of `steps` valid input steps (0: too short for the stack).
    public static func outputSteps(_ specs: [LayerSpec], _ steps: Int) -> Int {
        specs.reduce(steps) { $1.outputSteps($0) }
    }

    /// The recurrent networks inside, for the trainer's progress hooks during backward.
    public var recurrentNetworks: [RecurrentNetwork] { entries.flatMap(\.recurrentNetworks) }

    /// The last forward's output of every entry (T_i, B, O_i), for `--debug`.
    public var layerOutputs: [(name: String, values: FloatBuffer)] {
        let copied = zip(entryNames, outputs).map { ("\($0) output", $1) }
        guard topOutput != nil, let top = entries.last as? RecurrentLayer else { return copied }
        return copied.dropLast() + top.network.layerOutputs
    }

    /// The top entry's output (T′, B, O) step-major; past each sample's length it is zero, or for a
    /// recurrent top layer whatever its steps there gave (a head reads only valid steps).
    public var output: UnsafeMutablePointer<Float> { topOutput ?? outputs[outputs.count - 1].pointer }
    /// A unidirectional recurrent top layer's own output buffer, read in place (no copy).
    private var topOutput: UnsafeMutablePointer<Float>?
    public var outputStepCount: Int { steps.last ?? 0 }
    /// Each sample's valid output steps (at least 1).
    public var outputLengths: [Int] { lengths.last ?? [] }

    /// The first entry that keeps a stack from carrying its state from one batch to the next (a
    /// stateful model, a generator stepping one token at a time), with the reason; nil when it has
    /// only unidirectional recurrent, dense and dropout entries.
    public static func stateBreaker(_ specs: [LayerSpec]) -> (entry: Int, reason: String)? {
        for (i, spec) in specs.enumerated() {
            switch spec {
            case .recurrent(let r) where r.bidirectional:
                return (i, "a bidirectional layer reads every step's future, which a model that carries its state "
                    + "forward (or forecasts) does not have; use bidirectional = false")
            case .conv1d:
                return (i, "a conv1d would lose the steps before each batch (and before each step a generator "
                    + "takes alone) that its kernel reads: the state carried forward is the recurrent layers'; "
                    + "use lstm, gru, rnn, dense and dropout layers here")
            default: continue
            }
        }
        return nil
    }

    /// The state each unidirectional recurrent entry carries, (L_i, B, H_i) each, zeros.
    public func makeState(batch B: Int) -> StackState {
        StackState(parts: entries.compactMap { $0 as? RecurrentLayer }.map {
            RecurrentState(cell: $0.network.cellKind, layers: $0.network.layerCount, batch: B,
                           width: $0.network.hiddenSize)
        })
    }

    /// Runs the stack over x (B, T, I) or (T, B, I); `given` holds each sample's valid steps (nil: all).
    /// `state` (from `makeState`) is the recurrent entries' initial state and receives their final one.
    public func forward(_ x: UnsafePointer<Float>, layout: SequenceLayout = .batchFirst, batch B: Int, steps T: Int,
                        lengths given: [Int]?, parameters p: ParameterArena, dropout: DropoutContext?,
                        state: StackState? = nil) {
        let recurrent = entries.compactMap { $0 as? RecurrentLayer }
        for (k, layer) in recurrent.enumerated() { layer.carried = state?.parts[k] }
        defer { for layer in recurrent { layer.carried = nil } }
        batch = B
        lengths = [(given ?? [Int](repeating: T, count: B)).map { min(max($0, 1), T) }]
        steps = [T]
        var x = x
        // A step-major input with every step valid is read where it is (the caller keeps it until
        // backward); otherwise it is copied step-major, zero past each length.
        if layout != .stepMajor || given != nil {
            input.resize(T * B * inputWidth)
            copySequence(input.pointer, .stepMajor, x, layout, batch: B, steps: T, width: inputWidth)
            zeroPastLengths(input.pointer, steps: T, width: inputWidth, lengths: lengths[0])
            x = UnsafePointer(input.pointer)
        }
        topOutput = nil
        for (i, entry) in entries.enumerated() {
            if i == entries.count - 1, let top = entry as? RecurrentLayer {
                top.forwardInPlace(x, batch: B, steps: steps[i], parameters: p, dropout: dropout)
                topOutput = top.network.outputs
                lengths.append(lengths[i])
                steps.append(steps[i])
                break
            }
            let outSteps = max(specs[i].outputSteps(steps[i]), 1)
            outputs[i].resize(outSteps * B * entry.outputWidth)
            entry.forward(outputs[i].pointer, x, batch: B, steps: steps[i], lengths: lengths[i], parameters: p,
                          dropout: dropout)
            lengths.append(lengths[i].map { min(max(specs[i].outputSteps($0), 1), outSteps) })
            steps.append(outSteps)
            zeroPastLengths(outputs[i].pointer, steps: outSteps, width: entry.outputWidth, lengths: lengths[i + 1])
            x = UnsafePointer(outputs[i].pointer)
        }
    }

    /// Back-propagates dOutput (T′, B, O) step-major (zero past each length), adding every weight
    /// gradient; dInput receives the gradient of the input (T, B, I) step-major when given.
    public func backward(_ dOutput: UnsafePointer<Float>, dInput: UnsafeMutablePointer<Float>? = nil,
                         parameters p: ParameterArena) {
        var dy = dOutput
        for i in stride(from: entries.count - 1, through: 0, by: -1) {
            var dx: UnsafeMutablePointer<Float>? = dInput
            if i > 0 {
                dOutputs[i - 1].resize(steps[i] * batch * entries[i - 1].outputWidth)
                dx = dOutputs[i - 1].pointer
            }
            entries[i].backward(dx, dy, parameters: p)
            guard let dx else { break }
            // The input past each length was set to zero, so no gradient flows into it.
            zeroPastLengths(dx, steps: steps[i], width: i > 0 ? entries[i - 1].outputWidth : inputWidth,
                            lengths: lengths[i])
            dy = UnsafePointer(dx)
        }
    }

    /// The step whose output feature j is a sample's final state, for a sample of `length` valid
    /// output steps: the last valid step, or step 0 for the reverse half of a bidirectional top.
    @inline(__always) func finalStep(feature j: Int, length: Int) -> Int {
        j >= outputWidth - reverseWidth ? 0 : length - 1
    }

    /// final (B, O) ← every sample's final state from the last forward's output (PyTorch's h_n of the
    /// top layer, both directions concatenated).
    public func gatherFinalStates(_ final: UnsafeMutablePointer<Float>) {
        let O = outputWidth, B = batch, out = output
        for (b, length) in outputLengths.enumerated() {
            for j in 0..<O { final[b * O + j] = out[(finalStep(feature: j, length: length) * B + b) * O + j] }
        }
    }

    /// dOutput (T′, B, O) ← zero but for the gradient of the final states, dFinal (B, O).
    public func scatterFinalStates(_ dOutput: UnsafeMutablePointer<Float>, _ dFinal: UnsafePointer<Float>) {
        let O = outputWidth, B = batch
        dOutput.update(repeating: 0, count: outputStepCount * B * O)
        for (b, length) in outputLengths.enumerated() {
            for j in 0..<O { dOutput[(finalStep(feature: j, length: length) * B + b) * O + j] = dFinal[b * O + j] }
        }
    }

    /// rows (t, b) of x (T, B, F) with t ≥ lengths[b] ← 0.
    func zeroPastLengths(_ x: UnsafeMutablePointer<Float>, steps T: Int, width F: Int, lengths: [Int]) {
        for (b, length) in lengths.enumerated() where length < T {
            for t in length..<T { (x + (t * batch + b) * F).update(repeating: 0, count: F) }
        }
    }
}

/// The carried state of a stack's unidirectional recurrent entries: (L_i, B, H_i) for each.
public final class StackState {
    public let parts: [RecurrentState]

    public init(parts: [RecurrentState]) { self.parts = parts }

    public func zero() { parts.forEach { $0.zero() } }
}

/// dst (T, B, F) ← the first lengths[b] steps of every sample of src (T, B, F) in reverse order,
/// zeros after: what the reverse direction of a packed bidirectional layer reads. Its own inverse.
func reverseValidSteps(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, lengths: [Int],
                       steps T: Int, width F: Int) {
    let B = lengths.count
    for (b, length) in lengths.enumerated() {
        for t in 0..<T {
            let row = dst + (t * B + b) * F
            if t < length {
                row.update(from: src + ((length - 1 - t) * B + b) * F, count: F)
            } else {
                row.update(repeating: 0, count: F)
            }
        }
    }
}

/// `nn.Linear` at every step with an activation. Legend: N = T·B rows, I in, O units.
final class DenseLayer: SequenceLayer {
    let spec: LayerSpec
    let linear: Linear
    let activation: Activation
    var outputWidth: Int { linear.outFeatures }
    var recurrentNetworks: [RecurrentNetwork] { [] }
    private var x: UnsafePointer<Float>?           // (N, I): the input of the last forward
    private var y: UnsafePointer<Float>?           // (N, O): its output
    private let preActivation = FloatBuffer()      // (N, O)
    private let dPre = FloatBuffer()               // (N, O)
    private var rows = 0

    init(_ name: String, units: Int, activation: Activation, inputWidth: Int, layout: inout ParameterLayout) {
        spec = .dense(units: units, activation: activation)
        linear = Linear(name, inFeatures: inputWidth, outFeatures: units, layout: &layout)
        self.activation = activation
    }

    func forward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, batch B: Int, steps T: Int,
                 lengths: [Int], parameters p: ParameterArena, dropout: DropoutContext?) {
        rows = T * B
        self.x = x
        self.y = UnsafePointer(y)
        preActivation.resize(rows * outputWidth)
        linear.forward(preActivation.pointer, x, rows: rows, parameters: p)
        activation.forward(y, preActivation.pointer, count: rows * outputWidth)
    }

    func backward(_ dx: UnsafeMutablePointer<Float>?, _ dy: UnsafePointer<Float>, parameters p: ParameterArena) {
        guard let x, let y else { return }
        dPre.resize(rows * outputWidth)
        activation.backward(dPre.pointer, dy, x: preActivation.pointer, y: y, count: rows * outputWidth)
        linear.backward(dx, UnsafePointer(dPre.pointer), x, rows: rows, parameters: p)
    }
}

/// `nn.Dropout` on every step's features; the identity at inference. Masks keyed by the sample and
/// the step, so they do not depend on which replica holds a sample.
final class DropoutLayer: SequenceLayer {
    let spec: LayerSpec
    let dropout: Dropout
    let outputWidth: Int
    let stream: Int
    var recurrentNetworks: [RecurrentNetwork] { [] }
    private let mask = FloatBuffer()               // (T, B, F)
    private var active = false
    private var count = 0

    init(probability: Float, width: Int, stream: Int) {
        spec = .dropout(probability: Double(probability))
        dropout = Dropout(probability: probability)
        outputWidth = width
        self.stream = stream
    }

    func forward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, batch B: Int, steps T: Int,
                 lengths: [Int], parameters p: ParameterArena, dropout context: DropoutContext?) {
        count = T * B * outputWidth
        active = context != nil && dropout.probability > 0
        guard let context, active else { y.update(from: x, count: count); return }
        mask.resize(count)
        dropout.forward(y, mask: mask.pointer, x, rows: T * B, width: outputWidth,
                        keys: context.keys(layer: stream * 64, steps: T))
    }

    func backward(_ dx: UnsafeMutablePointer<Float>?, _ dy: UnsafePointer<Float>, parameters p: ParameterArena) {
        guard let dx else { return }
        if active {
            dropout.backward(dx, dy, mask: mask.pointer, count: count)
        } else {
            dx.update(from: dy, count: count)
        }
    }
}

// MARK: sizes, checked before anything is allocated

extension LayerSpec {
    /// Σ over the stack of the terms `entry(spec, its input width, product)` gives, every product and
    /// sum overflow-checked (`what` names the key). Widths are at most 2^25, so `width + k` is safe.
    static func sum(_ specs: [LayerSpec], input: Int, what: String,
                    _ entry: (LayerSpec, Int, ([Int]) throws -> Int) throws -> [Int]) throws -> Int {
        let product = { (factors: [Int]) in try MemoryCheck.product(factors, what: what) }
        var width = input, total = 0
        for spec in specs {
            total = try MemoryCheck.sum([total] + (try entry(spec, width, product)), what: what)
            width = spec.outputWidth(input: width)
        }
        return total
    }

    /// Parameters of a stack over `input` features.
    public static func parameterCount(_ specs: [LayerSpec], input: Int, what: String) throws -> Int {
        try sum(specs, input: input, what: what) { spec, width, product in
            switch spec {
            case .recurrent(let r):
                // Per level and direction: G·H (I_l + H + 2); I_l is the input, then the level's output.
                let directions = r.bidirectional ? 2 : 1
                return [try product([r.cell.gateCount, r.hidden, width + r.hidden + 2, directions]),
                        try product([r.cell.gateCount, r.hidden, r.outputWidth + r.hidden + 2, r.layers - 1,
                                     directions])]
            case .conv1d(let c): return [try product([c.filters, width, c.kernelSize]), c.filters]
            case .dense(let units, _): return [try product([units, width + 1])]
            case .dropout: return []
            }
        }
    }

    /// Floats of forward and backward buffers per (sample, step) of a stack over `input` features,
    /// an upper bound (recurrent layers: about 8 buffers of 4H per layer and direction; every entry's
    /// output and its gradient).
    public static func bufferFloatsPerStep(_ specs: [LayerSpec], input: Int, what: String) throws -> Int {
        try sum(specs, input: input, what: what) { spec, width, product in
            let output = try product([2, spec.outputWidth(input: width)])
            switch spec {
            case .recurrent(let r): return [try product([8, 4, r.hidden, r.layers, r.bidirectional ? 3 : 1]), output]
            case .conv1d(let c): return [try product([2, width, c.kernelSize]), 3 * c.filters, output]
            case .dense(let units, _): return [4 * units, output]
            case .dropout: return [2 * width, output]
            }
        }
    }

    /// Whether dropout acts anywhere in the stack (training then needs dropout keys).
    public static func usesDropout(_ specs: [LayerSpec]) -> Bool {
        specs.contains { spec in
            switch spec {
            case .recurrent(let r): return r.dropout > 0 && r.layers > 1
            case .dropout(let p): return p > 0
            default: return false
            }
        }
    }

    /// Whether an output step can depend on later input steps (a bidirectional layer, a conv1d
    /// padded "same"): what a stateful or forecasting model must refuse.
    public var readsAhead: Bool {
        switch self {
        case .recurrent(let r): return r.bidirectional
        case .conv1d(let c): return c.padding == .same
        default: return false
        }
    }
}
