/// Many-to-many forecaster: a layer stack (by default one L-layer LSTM or GRU) over the series' steps,
/// and at every step a Linear head to the next `horizon` values of the K target columns. The loss is
/// the experiment's (every step of a stateful chunk, or the last step of a window). The PyTorch module
/// with the same state_dict, for the shorthand (`model.cell`, `hidden`, `layers`, `dropout`):
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
/// With `[[model.layers]]` the stack is an `nn.ModuleList` named `layers` (launch/seqtrain_torch.py builds
/// it); a stateful forecaster's recurrent entries each carry their own state.
///
/// Legend: B lanes or windows, T steps, F features, O the stack's output width, K targets.
public final class SeriesForecaster: TrainableModel {
    public let body: LayerStack
    public let head: Linear
    public let parameters: ParameterArena
    public let horizon: Int, targets: Int
    public var recurrentStacks: [RecurrentNetwork] { body.recurrentNetworks }
    public var output: FloatBuffer { predictions }
    public var forwardOutputs: [(name: String, values: FloatBuffer)] {
        body.layerOutputs + [("head output (forecasts)", predictions)]
    }

    public let predictions = FloatBuffer()  // (T, B, horizon · K)
    private let dBody = FloatBuffer()       // (T, B, O)
    private var batch = 0, steps = 0

    /// The shorthand model: one recurrent entry named by its cell (`lstm.weight_ih_l0`).
    public convenience init(cell: RecurrentCell = .lstm, features: Int, hiddenSize: Int, targets: Int, horizon: Int,
                            layers: Int = 1, dropout: Float = 0) {
        let entry = LayerSpec.recurrent(RecurrentSpec(cell: cell, hidden: hiddenSize, layers: layers,
                                                      dropout: Double(dropout)))
        self.init(stack: [entry], naming: .shorthand, features: features, targets: targets, horizon: horizon)
    }

    /// `stack` keeps the number of steps (every step forecasts); a stateful one carries its state
    /// only through unidirectional recurrent, dense and dropout entries (`LayerStack.stateBreaker`).
    public init(stack: [LayerSpec], naming: StackNaming = .indexed(prefix: "layers"), features: Int, targets: Int,
                horizon: Int) {
        var layout = ParameterLayout()
        body = LayerStack(stack, inputWidth: features, naming: naming, layout: &layout)
        head = Linear("head", inFeatures: body.outputWidth, outFeatures: horizon * targets, layout: &layout)
        parameters = ParameterArena(layout)
        self.horizon = horizon
        self.targets = targets
    }

    public var outputWidth: Int { horizon * targets }

    /// The carried state of `batch` lanes, zeros.
    public func makeState(batch: Int) -> StackState { body.makeState(batch: batch) }

    /// predictions (T, B, horizon · K) of x (B, T, F) from `state` (nil: zeros), which receives the
    /// final state.
    public func forward(_ x: UnsafePointer<Float>, batch B: Int, steps T: Int, state: StackState?,
                        dropout: DropoutContext? = nil) {
        batch = B
        steps = T
        body.forward(x, layout: .batchFirst, batch: B, steps: T, lengths: nil, parameters: parameters,
                     dropout: dropout, state: state)
        predictions.resize(T * B * outputWidth)
        head.forward(predictions.pointer, body.output, rows: T * B, parameters: parameters)
    }

    /// Back-propagates dPredictions (T, B, horizon · K), the gradient of the loss sum (zeros where
    /// nothing was counted), adding every weight gradient.
    public func backward(_ dPredictions: UnsafePointer<Float>) {
        let B = batch, T = steps
        dBody.resize(T * B * body.outputWidth)
        head.backward(dBody.pointer, dPredictions, body.output, rows: T * B, parameters: parameters)
        body.backward(dBody.pointer, parameters: parameters)
    }
}
