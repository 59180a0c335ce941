/// Sequence tagger: a layer stack over real-valued features (by default one L-layer LSTM or GRU)
/// and a Linear head applied at every step, C outputs per step: class logits, label logits or
/// regression values. The loss is the experiment's; this model takes the gradient of the outputs.
/// Keras: `return_sequences=True` + `TimeDistributed(Dense(C))`. The PyTorch module with the same
/// state_dict, for the shorthand stack (`model.cell`, `hidden`, `layers`, `dropout`):
///
///     class SequenceTagger(nn.Module):
///         def __init__(s, I, H, C, L=1, dropout=0.0):
///             super().__init__()
///             s.lstm = nn.LSTM(I, H, L, batch_first=True, dropout=dropout)   # s.gru = nn.GRU(...) for cell = "gru"
///             s.head = nn.Linear(H, C)
///         def forward(s, x, lengths):                       # x (B, T, I), lengths (B,)
///             packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
///             out, _ = pad_packed_sequence(s.lstm(packed)[0], batch_first=True, total_length=x.shape[1])
///             return s.head(out)                             # (B, T, C); steps past a length are ignored
///
/// With `[[model.layers]]` the stack is an `nn.ModuleList` named `layers` (launch/seqtrain_torch.py
/// builds it). Every entry must keep the number of steps, so that step t's output tags input step t.
///
/// Legend: B batch, T steps, I features, O the stack's output features, C outputs per step.
public final class SequenceTagger: TrainableModel {
    public let body: LayerStack
    public let head: Linear
    public let parameters: ParameterArena
    public let outputCount: Int
    public var recurrentStacks: [RecurrentNetwork] { body.recurrentNetworks }
    public var output: FloatBuffer { outputs }
    public var forwardOutputs: [(name: String, values: FloatBuffer)] {
        body.layerOutputs + [("head output (per step)", outputs)]
    }

    public let outputs = FloatBuffer()         // (T, B, C), step-major
    private let dStack = FloatBuffer()         // (T, B, O), step-major
    private var batch = 0, steps = 0

    /// The shorthand model: one recurrent entry named by its cell (`lstm.weight_ih_l0`).
    public convenience init(cell: RecurrentCell = .lstm, inputSize: Int, hiddenSize: Int, layers: Int = 1, outputs: Int,
                            dropout: Double = 0) {
        let spec = RecurrentSpec(cell: cell, hidden: hiddenSize, layers: layers, dropout: dropout)
        self.init(stack: [.recurrent(spec)], naming: .shorthand, inputSize: inputSize, outputs: outputs)
    }

    /// The stack must keep the steps (a conv1d of stride 1 padded "same" or "causal"); the experiment refuses others.
    public init(stack: [LayerSpec], naming: StackNaming = .indexed(prefix: "layers"), inputSize: Int, outputs: Int) {
        precondition(stack.allSatisfy(\.keepsSteps), "a tagger's stack must keep the number of steps")
        var layout = ParameterLayout()
        body = LayerStack(stack, inputWidth: inputSize, naming: naming, layout: &layout)
        head = Linear("head", inFeatures: body.outputWidth, outFeatures: outputs, layout: &layout)
        parameters = ParameterArena(layout)
        outputCount = outputs
    }

    /// outputs (T, B, C) ← head(stack(x (B, T, I))) at every step; `lengths` (nil: all T steps) are
    /// each sample's valid steps: the outputs past them are not meaningful and the losses mask them.
    public func forward(_ x: UnsafePointer<Float>, batch B: Int, steps T: Int, lengths: [Int]? = nil,
                        dropout: DropoutContext? = nil) {
        batch = B
        steps = T
        body.forward(x, batch: B, steps: T, lengths: lengths, parameters: parameters, dropout: dropout)
        outputs.resize(T * B * outputCount)
        head.forward(outputs.pointer, body.output, rows: T * B, parameters: parameters)
    }

    /// Back-propagates dOutputs (T, B, C) (the gradient of the loss sum, zero at masked steps),
    /// adding every weight gradient.
    public func backward(_ dOutputs: UnsafePointer<Float>) {
        let rows = steps * batch, O = body.outputWidth
        dStack.resize(rows * O)
        head.backward(dStack.pointer, dOutputs, body.output, rows: rows, parameters: parameters)
        // The stack wants zero past each length; the losses already zero those rows, this makes sure.
        body.zeroPastLengths(dStack.pointer, steps: steps, width: O, lengths: body.outputLengths)
        body.backward(dStack.pointer, parameters: parameters)
    }
}
