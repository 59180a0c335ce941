/// How a sequence classifier turns every step's top-layer output into one vector per sample,
/// over the sample's valid steps only.
public enum Pooling: String, CaseIterable {
    /// The output at the last valid step (PyTorch: `out[b, length_b - 1]`).
    case last
    /// The mean of the outputs over the valid steps.
    case mean
    /// The elementwise maximum over the valid steps.
    case max
}

/// Sequence classifier: a layer stack over real-valued features (by default one L-layer LSTM or GRU),
/// its outputs pooled over each sample's valid steps → Linear to C logits. The loss (softmax
/// cross-entropy for one label, sigmoid binary cross-entropy for several) is the experiment's; this
/// model takes the gradient of the logits. The PyTorch module with the same state_dict, for the
/// shorthand stack (`model.cell`, `hidden`, `layers`, `dropout`):
///
///     class SequenceClassifier(nn.Module):
///         def __init__(s, I, H, C, L=1, dropout=0.0, pooling="last"):
///             super().__init__()
///             s.lstm = nn.LSTM(I, H, L, batch_first=True, dropout=dropout)   # s.gru = nn.GRU(...) for cell = "gru"
///             s.head = nn.Linear(H, C); s.pooling = pooling
///         def forward(s, x, lengths):                       # x (B, T, I), lengths (B,)
///             out, _ = s.lstm(x)
///             valid = torch.arange(x.shape[1])[None, :, None] < lengths[:, None, None]
///             if s.pooling == "last": pooled = out[torch.arange(len(x)), lengths - 1]
///             elif s.pooling == "mean": pooled = (out * valid).sum(1) / lengths[:, None]
///             else: pooled = out.masked_fill(~valid, float("-inf")).amax(1)
///             return s.head(pooled)
///
/// With `[[model.layers]]` the stack is an `nn.ModuleList` named `layers` (launch/seqtrain_torch.py
/// builds it); "last" pooling of a bidirectional top layer takes both directions' final states
/// (PyTorch's h_n: the forward half at the last valid step, the reverse half at step 0).
///
/// Legend: B batch, T steps, I features, O the stack's output features, C labels.
public final class SequenceClassifier: TrainableModel {
    public let body: LayerStack
    public let head: Linear
    public let parameters: ParameterArena
    public let labelCount: Int
    public let pooling: Pooling
    public var recurrentStacks: [RecurrentNetwork] { body.recurrentNetworks }
    public var output: FloatBuffer { logits }
    public var forwardOutputs: [(name: String, values: FloatBuffer)] {
        body.layerOutputs + [("head output (logits)", logits)]
    }

    public let logits = FloatBuffer()          // (B, C)
    private let pooled = FloatBuffer()         // (B, O)
    private let dPooled = FloatBuffer()        // (B, O)
    private let dOutputs = FloatBuffer()       // (T′, B, O), step-major
    private var argmax: [Int32] = []           // (B, O): the step max pooling took
    public private(set) var batch = 0

    /// The shorthand model: one recurrent entry named by its cell (`gru.weight_ih_l0`).
    public convenience init(cell: RecurrentCell = .gru, inputSize: Int, hiddenSize: Int, layers: Int = 1, labels: Int,
                            dropout: Float = 0, pooling: Pooling = .last) {
        let spec = RecurrentSpec(cell: cell, hidden: hiddenSize, layers: layers, dropout: Double(dropout))
        self.init(stack: [.recurrent(spec)], naming: .shorthand, inputSize: inputSize, labels: labels, pooling: pooling)
    }

    public init(stack: [LayerSpec], naming: StackNaming = .indexed(prefix: "layers"), inputSize: Int, labels: Int,
                pooling: Pooling = .last) {
        var layout = ParameterLayout()
        body = LayerStack(stack, inputWidth: inputSize, naming: naming, layout: &layout)
        head = Linear("head", inFeatures: body.outputWidth, outFeatures: labels, layout: &layout)
        parameters = ParameterArena(layout)
        labelCount = labels
        self.pooling = pooling
    }

    /// logits (B, C) ← head(pool(stack(x (B, T, I)))) over each sample's `lengths` (nil: all T steps).
    public func forward(_ x: UnsafePointer<Float>, batch B: Int, steps T: Int, lengths given: [Int]? = nil,
                        dropout: DropoutContext? = nil) {
        batch = B
        body.forward(x, batch: B, steps: T, lengths: given, parameters: parameters, dropout: dropout)
        let O = body.outputWidth, outputs = body.output, lengths = body.outputLengths  // (T′, B, O)
        pooled.resize(B * O)
        if pooling == .max { argmax = [Int32](repeating: 0, count: B * O) }
        if pooling == .last { body.gatherFinalStates(pooled.pointer) }
        for b in 0..<B where pooling != .last {
            let length = lengths[b]
            let out = pooled.pointer + b * O
            switch pooling {
            case .last: break
            case .mean:
                out.update(repeating: 0, count: O)
                for t in 0..<length { addInPlace(out, outputs + (t * B + b) * O, count: O) }
                scaleInPlace(out, by: 1 / Float(length), count: O)
            case .max:
                out.update(from: outputs + b * O, count: O)
                for t in 1..<max(length, 1) {
                    let row = outputs + (t * B + b) * O
                    for j in 0..<O where row[j] > out[j] {
                        out[j] = row[j]
                        argmax[b * O + j] = Int32(t)
                    }
                }
            }
        }
        logits.resize(B * labelCount)
        head.forward(logits.pointer, pooled.pointer, rows: B, parameters: parameters)
    }

    /// Back-propagates dLogits (B, C) (the gradient of the loss sum), adding every weight gradient.
    public func backward(_ dLogits: UnsafePointer<Float>) {
        let B = batch, T = body.outputStepCount, O = body.outputWidth, lengths = body.outputLengths
        dPooled.resize(B * O)
        head.backward(dPooled.pointer, dLogits, pooled.pointer, rows: B, parameters: parameters)
        dOutputs.resize(T * B * O)
        dOutputs.zero()
        if pooling == .last { body.scatterFinalStates(dOutputs.pointer, dPooled.pointer) }
        for b in 0..<B where pooling != .last {
            let length = lengths[b]
            let d = dPooled.pointer + b * O
            switch pooling {
            case .last: break
            case .mean:
                let scale = 1 / Float(length)
                for t in 0..<length {
                    let row = dOutputs.pointer + (t * B + b) * O
                    for j in 0..<O { row[j] = d[j] * scale }
                }
            case .max:
                for j in 0..<O { dOutputs[(Int(argmax[b * O + j]) * B + b) * O + j] = d[j] }
            }
        }
        body.backward(dOutputs.pointer, parameters: parameters)
    }
}
