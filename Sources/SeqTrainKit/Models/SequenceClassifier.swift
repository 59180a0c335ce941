/// Multi-label sequence classifier: an L-layer GRU (or LSTM) over real-valued features, its last
/// step's output → Linear to C logits, trained with sigmoid binary cross-entropy (one yes/no per label;
/// never softmax, which would force the labels to compete). The PyTorch module:
///
///     class GRUTagger(nn.Module):
///         def __init__(s, I, H, C, L=1):
///             super().__init__()
///             s.gru = nn.GRU(I, H, L, batch_first=True)      # nn.LSTM and s.lstm for cell = "lstm"
///             s.head = nn.Linear(H, C)
///         def forward(s, x):
///             out, _ = s.gru(x)
///             return s.head(out[:, -1, :])
///
/// Legend: B batch, T steps, I features, H hidden, C labels.
public final class SequenceClassifier {
    public let rnn: RecurrentNetwork
    public let head: Linear
    public let parameters: ParameterArena
    public let labelCount: Int

    public let logits = FloatBuffer()          // (B, C)
    private let dLogits = FloatBuffer()        // (B, C)
    private let lastHidden = FloatBuffer()     // (B, H)
    private var finalState: RecurrentState?
    private var dFinal: RecurrentState?
    private var batch = 0

    public init(cell: RecurrentCell = .gru, inputSize: Int, hiddenSize: Int, layers: Int = 1, labels: Int, dropout: Float = 0) {
        var layout = ParameterLayout()
        rnn = RecurrentNetwork(cell.rawValue, cell: cell, inputSize: inputSize, hiddenSize: hiddenSize, layers: layers,
                               dropout: dropout, dropoutStream: 1, layout: &layout)
        head = Linear("head", inFeatures: hiddenSize, outFeatures: labels, layout: &layout)
        parameters = ParameterArena(layout)
        labelCount = labels
    }

    /// logits (B, C) ← head(last output of the stack over x (B, T, I)).
    public func forward(_ x: UnsafePointer<Float>, batch B: Int, steps T: Int, dropout: DropoutContext? = nil) {
        batch = B
        let H = rnn.hiddenSize
        let state = RecurrentState(cell: rnn.cellKind, layers: rnn.layerCount, batch: B, width: H)
        finalState = state
        rnn.forward(nil, x, batch: B, steps: T, initial: nil, final: state, parameters: parameters, dropout: dropout)
        lastHidden.resize(B * H)
        lastHidden.pointer.update(from: state.hidden.pointer + (rnn.layerCount - 1) * B * H, count: B * H)
        logits.resize(B * labelCount)
        head.forward(logits.pointer, lastHidden.pointer, rows: B, parameters: parameters)
    }

    /// BCE-with-logits against targets (B, C) in [0, 1]; with `gradient`, back-propagates the sum.
    public func loss(targets: UnsafePointer<Float>, loss lossFunction: BinaryCrossEntropyLoss, gradient: Bool) throws -> LossTotal {
        let B = batch, H = rnn.hiddenSize
        if gradient { dLogits.resize(B * labelCount) }
        let total = try lossFunction.evaluate(gradient ? dLogits.pointer : nil, logits: logits.pointer, targets: targets,
                                              rows: B, classes: labelCount)
        guard gradient else { return total }
        // The last output is the top layer's final h: its gradient enters as dFinal.
        let d = RecurrentState(cell: rnn.cellKind, layers: rnn.layerCount, batch: B, width: H)
        dFinal = d
        head.backward(d.hidden.pointer + (rnn.layerCount - 1) * B * H, dLogits.pointer, lastHidden.pointer, rows: B, parameters: parameters)
        rnn.backward(nil, nil, dFinal: d, parameters: parameters)
        return total
    }
}
