/// Many-to-many forecaster: an L-layer LSTM (or GRU) over the series' steps, and at every step a
/// Linear head to the next `horizon` values of the K target columns. The loss is the experiment's
/// (every step of a stateful chunk, or the last step of a window). The PyTorch module with the same
/// state_dict:
///
///     class Forecaster(nn.Module):
///         def __init__(s, F, H, K, horizon, L=1, dropout=0.0):
///             super().__init__()
///             s.lstm = nn.LSTM(F, H, L, batch_first=True, dropout=dropout)   # s.gru = nn.GRU(...) for cell = "gru"
///             s.head = nn.Linear(H, horizon * K); s.horizon, s.K = horizon, K
///         def forward(s, x, state=None):                    # x (B, T, F): standardized (and differenced)
///             out, state = s.lstm(x, state)
///             y = s.head(out).view(x.shape[0], x.shape[1], s.horizon, s.K)
///             return y, state                               # y[b, t, h, k]: target k at step t + 1 + h
///
/// Legend: B lanes or windows, T steps, F features, H hidden, K targets, L layers.
public final class SeriesForecaster: TrainableModel {
    public let rnn: RecurrentNetwork
    public let head: Linear
    public let parameters: ParameterArena
    public let horizon: Int, targets: Int
    public var recurrentStacks: [RecurrentNetwork] { [rnn] }
    public var forwardOutputs: [(name: String, values: FloatBuffer)] { rnn.layerOutputs + [("head output (forecasts)", predictions)] }

    public let predictions = FloatBuffer()  // (T, B, horizon · K)
    private let dHidden = FloatBuffer()     // (T, B, H)
    private var batch = 0, steps = 0

    public init(cell: RecurrentCell = .lstm, features: Int, hiddenSize: Int, targets: Int, horizon: Int, layers: Int = 1, dropout: Float = 0) {
        var layout = ParameterLayout()
        rnn = RecurrentNetwork(cell.rawValue, cell: cell, inputSize: features, hiddenSize: hiddenSize, layers: layers,
                               dropout: dropout, dropoutStream: 1, layout: &layout)
        head = Linear("head", inFeatures: hiddenSize, outFeatures: horizon * targets, layout: &layout)
        parameters = ParameterArena(layout)
        self.horizon = horizon
        self.targets = targets
    }

    public var outputWidth: Int { horizon * targets }

    public func makeState(batch: Int) -> RecurrentState {
        RecurrentState(cell: rnn.cellKind, layers: rnn.layerCount, batch: batch, width: rnn.hiddenSize)
    }

    /// predictions (T, B, horizon · K) of x (B, T, F) from `state` (nil: zeros), which receives the
    /// final state.
    public func forward(_ x: UnsafePointer<Float>, batch B: Int, steps T: Int, state: RecurrentState?, dropout: DropoutContext? = nil) {
        batch = B
        steps = T
        rnn.forward(nil, x, batch: B, steps: T, initial: state, final: state, parameters: parameters, dropout: dropout)
        predictions.resize(T * B * outputWidth)
        head.forward(predictions.pointer, rnn.outputs, rows: T * B, parameters: parameters)
    }

    /// Back-propagates dPredictions (T, B, horizon · K), the gradient of the loss sum (zeros where
    /// nothing was counted), adding every weight gradient.
    public func backward(_ dPredictions: UnsafePointer<Float>, gradientsReady: ((Int) -> Void)? = nil) {
        let B = batch, T = steps
        dHidden.resize(T * B * rnn.hiddenSize)
        head.backward(dHidden.pointer, dPredictions, rnn.outputs, rows: T * B, parameters: parameters)
        gradientsReady?(head.weight.offset)
        rnn.backward(nil, dHidden.pointer, outputLayout: .stepMajor, parameters: parameters,
                     afterLayer: gradientsReady.map { ready in { [rnn] l in ready(rnn.layers[l].inputWeight.offset) } })
        gradientsReady?(0)
    }
}
