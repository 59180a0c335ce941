/// Character-level language model: Embedding → a layer stack (by default one L-layer LSTM or GRU) →
/// Linear to the vocabulary, trained with softmax cross-entropy on the logits. The PyTorch module
/// with the same state_dict, for the shorthand (`model.cell`, `hidden`, `layers`, `dropout`):
///
///     class CharLM(nn.Module):
///         def __init__(s, V, E, H, L, dropout=0.0):
///             super().__init__()
///             s.embedding = nn.Embedding(V, E)
///             s.lstm = nn.LSTM(E, H, L, batch_first=True, dropout=dropout)   # nn.GRU for cell = "gru"
///             s.head = nn.Linear(H, V)
///         def forward(s, x, state=None):
///             out, state = s.lstm(s.embedding(x), state)
///             return s.head(out), state
///
/// With `[[model.layers]]` the stack is an `nn.ModuleList` named `layers` of unidirectional recurrent,
/// dense and dropout entries, each recurrent entry carrying its own state (stateful lanes).
///
/// Legend: B lanes (batch rows), T steps, V vocabulary, E embedding, O the stack's output width.
/// Inside, every sequence buffer is step-major (T, B, ·); ids and targets arrive batch-first (B, T).
public final class CharLanguageModel {
    public struct Shape: Equatable, Codable {
        public var vocabularySize: Int
        public var embeddingSize: Int
        public var hiddenSize: Int
        public var layers: Int
        public var dropout: Float
        public var cell: RecurrentCell

        public init(vocabularySize: Int, embeddingSize: Int, hiddenSize: Int, layers: Int, dropout: Float = 0,
                    cell: RecurrentCell = .lstm) {
            self.vocabularySize = vocabularySize
            self.embeddingSize = embeddingSize
            self.hiddenSize = hiddenSize
            self.layers = layers
            self.dropout = dropout
            self.cell = cell
        }

        /// The shorthand's one recurrent entry.
        var stack: [LayerSpec] {
            [.recurrent(RecurrentSpec(cell: cell, hidden: hiddenSize, layers: layers, dropout: Double(dropout)))]
        }
    }

    public let vocabularySize: Int
    public let embedding: Embedding
    public let body: LayerStack
    public let head: Linear
    public let parameters: ParameterArena

    private let embedded = FloatBuffer()      // (T, B, E)
    var embeddedOutput: FloatBuffer { embedded }
    public let logits = FloatBuffer()         // (T, B, V)
    /// (T, B, V): where the experiment's loss writes its gradient for `backward`.
    public let dLogits = FloatBuffer()
    private let dHidden = FloatBuffer()       // (T, B, O)
    private let dEmbedded = FloatBuffer()     // (T, B, E)
    private var inputIds: [Int32] = []        // (T, B)
    public private(set) var batch = 0, steps = 0

    /// The shorthand model: one recurrent entry named by its cell (`lstm.weight_ih_l0`).
    public convenience init(_ shape: Shape) {
        self.init(vocabularySize: shape.vocabularySize, embeddingSize: shape.embeddingSize, stack: shape.stack,
                  naming: .shorthand)
    }

    /// `stack` may hold unidirectional recurrent, dense and dropout entries (`LayerStack.stateBreaker`).
    public init(vocabularySize V: Int, embeddingSize E: Int, stack: [LayerSpec],
                naming: StackNaming = .indexed(prefix: "layers")) {
        vocabularySize = V
        var layout = ParameterLayout()
        embedding = Embedding("embedding", vocabularySize: V, width: E, layout: &layout)
        body = LayerStack(stack, inputWidth: E, naming: naming, layout: &layout)
        head = Linear("head", inFeatures: body.outputWidth, outFeatures: V, layout: &layout)
        parameters = ParameterArena(layout)
    }

    public var embeddingSize: Int { embedding.width }

    /// The carried state of `batch` lanes, zeros.
    public func makeState(batch: Int) -> StackState { body.makeState(batch: batch) }

    /// Forward over ids (B, T) from `state`, which receives the final state; logits (T, B, V) are kept.
    /// `dropout` nil means inference.
    public func forward(ids: [Int32], batch B: Int, steps T: Int, state: StackState,
                        dropout: DropoutContext? = nil) throws {
        guard ids.count == B * T else { throw SeqTrainError("expected \(B)×\(T) = \(B * T) ids, got \(ids.count)") }
        try ids.withUnsafeBufferPointer { try embedding.validate($0) }
        batch = B
        steps = T
        let E = embeddingSize, V = vocabularySize
        inputIds = transposeToStepMajor(ids, batch: B, steps: T)
        embedded.resize(T * B * E)
        embedding.forward(embedded.pointer, inputIds, count: T * B, parameters: parameters)
        body.forward(embedded.pointer, layout: .stepMajor, batch: B, steps: T, lengths: nil, parameters: parameters,
                     dropout: dropout, state: state)
        logits.resize(T * B * V)
        head.forward(logits.pointer, body.output, rows: T * B, parameters: parameters)
    }

    /// Back-propagates dLogits (T, B, V), the gradient of the loss sum with respect to the kept
    /// logits, adding every weight gradient.
    public func backward(_ dLogits: UnsafePointer<Float>) {
        let B = batch, T = steps, O = body.outputWidth, E = embeddingSize
        dHidden.resize(T * B * O)
        head.backward(dHidden.pointer, dLogits, body.output, rows: T * B, parameters: parameters)
        dEmbedded.resize(T * B * E)
        body.backward(dHidden.pointer, dInput: dEmbedded.pointer, parameters: parameters)
        embedding.backward(dEmbedded.pointer, inputIds, count: T * B, parameters: parameters)
    }

    /// The kept logits, batch-first (B, T, V).
    public func logitsBatchFirst() -> [Float] {
        var out = [Float](repeating: 0, count: logits.count)
        out.withUnsafeMutableBufferPointer {
            copySequence($0.baseAddress!, .batchFirst, logits.pointer, .stepMajor, batch: batch, steps: steps,
                         width: vocabularySize)
        }
        return out
    }
}

/// (B, T) row-major values reordered to (T, B).
func transposeToStepMajor<T>(_ values: [T], batch B: Int, steps S: Int) -> [T] {
    var out = values
    for b in 0..<B { for t in 0..<S { out[t * B + b] = values[b * S + t] } }
    return out
}
