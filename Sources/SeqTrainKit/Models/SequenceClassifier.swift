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

/// Sequence classifier: an L-layer LSTM (or GRU) over real-valued features, its outputs pooled over
/// each sample's valid steps → Linear to C logits. The loss (softmax cross-entropy for one label,
/// sigmoid binary cross-entropy for several) is the experiment's; this model takes the gradient of
/// the logits. The PyTorch module with the same state_dict:
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
/// Legend: B batch, T steps, I features, H hidden, C labels.
public final class SequenceClassifier: TrainableModel {
    public let rnn: RecurrentNetwork
    public let head: Linear
    public let parameters: ParameterArena
    public let labelCount: Int
    public let pooling: Pooling
    public var recurrentStacks: [RecurrentNetwork] { [rnn] }
    public var forwardOutputs: [(name: String, values: FloatBuffer)] { rnn.layerOutputs + [("head output (logits)", logits)] }

    public let logits = FloatBuffer()          // (B, C)
    private let dLogits = FloatBuffer()        // (B, C)
    private let pooled = FloatBuffer()         // (B, H)
    private let dPooled = FloatBuffer()        // (B, H)
    private let dOutputs = FloatBuffer()       // (T, B, H), step-major
    private var argmax: [Int32] = []           // (B, H): the step max pooling took
    private var lengths: [Int] = []            // (B)
    private var batch = 0, steps = 0

    public init(cell: RecurrentCell = .gru, inputSize: Int, hiddenSize: Int, layers: Int = 1, labels: Int, dropout: Float = 0,
                pooling: Pooling = .last) {
        var layout = ParameterLayout()
        rnn = RecurrentNetwork(cell.rawValue, cell: cell, inputSize: inputSize, hiddenSize: hiddenSize, layers: layers,
                               dropout: dropout, dropoutStream: 1, layout: &layout)
        head = Linear("head", inFeatures: hiddenSize, outFeatures: labels, layout: &layout)
        parameters = ParameterArena(layout)
        labelCount = labels
        self.pooling = pooling
    }

    /// logits (B, C) ← head(pool(stack(x (B, T, I)))) over each sample's `lengths` (nil: all T steps).
    public func forward(_ x: UnsafePointer<Float>, batch B: Int, steps T: Int, lengths given: [Int]? = nil, dropout: DropoutContext? = nil) {
        batch = B
        steps = T
        lengths = given ?? [Int](repeating: T, count: B)
        let H = rnn.hiddenSize
        rnn.forward(nil, x, batch: B, steps: T, initial: nil, final: nil, parameters: parameters, dropout: dropout)
        let outputs = rnn.outputs  // (T, B, H)
        pooled.resize(B * H)
        if pooling == .max { argmax = [Int32](repeating: 0, count: B * H) }
        for b in 0..<B {
            let length = min(max(lengths[b], 1), T)
            let out = pooled.pointer + b * H
            switch pooling {
            case .last:
                out.update(from: outputs + ((length - 1) * B + b) * H, count: H)
            case .mean:
                out.update(repeating: 0, count: H)
                for t in 0..<length { addInPlace(out, outputs + (t * B + b) * H, count: H) }
                scaleInPlace(out, by: 1 / Float(length), count: H)
            case .max:
                out.update(from: outputs + b * H, count: H)
                for t in 1..<max(length, 1) {
                    let row = outputs + (t * B + b) * H
                    for j in 0..<H where row[j] > out[j] {
                        out[j] = row[j]
                        argmax[b * H + j] = Int32(t)
                    }
                }
            }
        }
        logits.resize(B * labelCount)
        head.forward(logits.pointer, pooled.pointer, rows: B, parameters: parameters)
    }

    /// Back-propagates dLogits (B, C) (the gradient of the loss sum), adding every weight gradient.
    /// `gradientsReady(offset)` is called as parts of the arena become final (see GradientReducer).
    public func backward(_ dLogits: UnsafePointer<Float>, gradientsReady: ((Int) -> Void)? = nil) {
        let B = batch, T = steps, H = rnn.hiddenSize
        dPooled.resize(B * H)
        head.backward(dPooled.pointer, dLogits, pooled.pointer, rows: B, parameters: parameters)
        gradientsReady?(head.weight.offset)
        dOutputs.resize(T * B * H)
        dOutputs.zero()
        for b in 0..<B {
            let length = min(max(lengths[b], 1), T)
            let d = dPooled.pointer + b * H
            switch pooling {
            case .last:
                (dOutputs.pointer + ((length - 1) * B + b) * H).update(from: d, count: H)
            case .mean:
                let scale = 1 / Float(length)
                for t in 0..<length {
                    let row = dOutputs.pointer + (t * B + b) * H
                    for j in 0..<H { row[j] = d[j] * scale }
                }
            case .max:
                for j in 0..<H { dOutputs[(Int(argmax[b * H + j]) * B + b) * H + j] = d[j] }
            }
        }
        rnn.backward(nil, dOutputs.pointer, outputLayout: .stepMajor, parameters: parameters,
                     afterLayer: gradientsReady.map { ready in { [rnn] l in ready(rnn.layers[l].inputWeight.offset) } })
        gradientsReady?(0)
    }

    /// BCE-with-logits against targets (B, C) in [0, 1]; with `gradient`, back-propagates the sum.
    public func loss(targets: UnsafePointer<Float>, loss lossFunction: BinaryCrossEntropyLoss, gradient: Bool) throws -> LossTotal {
        if gradient { dLogits.resize(batch * labelCount) }
        let total = try lossFunction.evaluate(gradient ? dLogits.pointer : nil, logits: logits.pointer, targets: targets,
                                              rows: batch, classes: labelCount)
        if gradient { backward(dLogits.pointer) }
        return total
    }
}
