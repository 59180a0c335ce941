import Foundation

/// Sequence-to-sequence generator over tokens: an embedding, an encoder stack over the source's
/// valid steps → its final states → a latent vector (or, variational, a mean and a log-variance and
/// z = μ + σ ⊙ ε) → the decoder's initial state tanh(to_state(z)) → a decoder LSTM, GRU or RNN fed
/// the previous token (teacher forcing, or its own) → Linear to the vocabulary. The loss on the
/// logits is the experiment's. The PyTorch module with the same state_dict, for the shorthand
/// (`model.cell`, `hidden`, `layers`):
///
///     class Seq2Seq(nn.Module):
///         def __init__(s, V, E, H, Z, L=1, dropout=0.0, variational=False):   # nn.LSTM for cell = "lstm"
///             super().__init__()
///             s.embedding = nn.Embedding(V, E)
///             s.encoder = nn.GRU(E, H, L, batch_first=True, dropout=dropout)
///             if variational: s.to_mean, s.to_logvar = nn.Linear(H, Z), nn.Linear(H, Z)
///             else: s.to_latent = nn.Linear(H, Z)
///             s.to_state = nn.Linear(Z, L * H)
///             s.decoder = nn.GRU(E, H, L, batch_first=True, dropout=dropout)
///             s.head = nn.Linear(H, V); s.L, s.H, s.variational = L, H, variational
///         def encode(s, src, lengths):                       # src (B, S) ids, lengths (B,)
///             out, _ = s.encoder(s.embedding(src))
///             last = out[torch.arange(len(src)), lengths - 1]
///             if not s.variational: return s.to_latent(last), None
///             return s.to_mean(last), s.to_logvar(last)      # z = mean + exp(logvar / 2) * randn
///         def decode(s, z, inputs):                          # inputs (B, T): <s>, then the previous tokens
///             h = torch.tanh(s.to_state(z)).view(len(z), s.L, s.H).transpose(0, 1).contiguous()
///             out, _ = s.decoder(s.embedding(inputs), h)    # LSTM: (h, torch.zeros_like(h))
///             return s.head(out)
///
/// With `[[model.encoder]]` / `[[model.decoder]]` each stack is an `nn.ModuleList` (`encoder.0.weight_ih_l0`,
/// `decoder.0.weight_hh_l1`; launch/seqtrain_torch.py builds it). The encoder is any stack, run over each
/// source's valid steps (a packed sequence for a bidirectional entry); the latent comes from its final
/// states (the top entry at the last valid step, both directions' h_n for a bidirectional top). The
/// decoder is stepped token by token (generation, scheduled sampling), so it is one unidirectional
/// recurrent entry: to_state gives its L·H initial state.
///
/// Legend: B batch, S source steps, S′ the encoder's output steps, T decoder steps, V vocabulary,
/// E embedding, O_e the encoder's output width, Z latent, L and H the decoder's layers and hidden width.
/// Buffers are step-major (·, B, ·).
public final class SequenceGenerator: TrainableModel {
    public let embedding: Embedding
    public let encoder: LayerStack
    public let toLatent: Linear?
    public let toMean: Linear?, toLogVariance: Linear?
    public let toState: Linear
    /// The decoder's stack of one unidirectional recurrent entry (its names and parameters).
    public let decoderStack: LayerStack
    /// That entry's network, run in one pass (teacher forcing) or one step at a time.
    public let decoder: RecurrentNetwork
    public let head: Linear
    public let parameters: ParameterArena
    public var variational: Bool { toMean != nil }
    public var recurrentStacks: [RecurrentNetwork] { encoder.recurrentNetworks + [decoder] }
    public var output: FloatBuffer { logits }
    public var forwardOutputs: [(name: String, values: FloatBuffer)] {
        encoder.layerOutputs + [("latent", latent)] + decoder.layerOutputs + [("head output (logits)", logits)]
    }

    public let mean = FloatBuffer()           // (B, Z): the latent, or its mean
    public let logVariance = FloatBuffer()    // (B, Z), variational
    public let latent = FloatBuffer()         // (B, Z): what the decoder starts from
    public let logits = FloatBuffer()         // (T, B, V)
    private let noise = FloatBuffer()         // (B, Z): ε of the reparameterization (zeros: z = μ)
    private var sourceIds: [Int32] = []       // (S, B)
    private let sourceEmbedded = FloatBuffer(), encoded = FloatBuffer()      // (S, B, E), (B, O_e)
    private var decoderIds: [Int32] = []      // (T, B): the tokens fed
    private let decoderEmbedded = FloatBuffer(), stepEmbedded = FloatBuffer()  // (T, B, E), (B, E)
    private let startState = FloatBuffer()    // (B, L·H): tanh(to_state(z))
    private let dDecoded = FloatBuffer()      // (T, B, H)
    private let dDecoderEmbedded = FloatBuffer()  // (T, B, E)
    private let dState = FloatBuffer()        // (B, L·H)
    private let dLatent = FloatBuffer()       // (B, Z)
    private let dMean = FloatBuffer(), dLogVariance = FloatBuffer()  // (B, Z) each
    private let dEncoded = FloatBuffer()      // (B, O_e)
    private let dEncoderOutputs = FloatBuffer()  // (S′, B, O_e): zero but at the final states
    private let dSourceEmbedded = FloatBuffer()  // (S, B, E)
    private var lengths: [Int] = []
    private var batch = 0, sourceSteps = 0, decoderSteps = 0

    /// The shorthand model: one recurrent entry each, named `encoder` and `decoder`.
    public convenience init(cell: RecurrentCell = .gru, vocabulary V: Int, embedding E: Int, hidden H: Int,
                            latent Z: Int, layers L: Int = 1, dropout: Float = 0, variational: Bool = false) {
        let entry = LayerSpec.recurrent(RecurrentSpec(cell: cell, hidden: H, layers: L, dropout: Double(dropout)))
        self.init(encoder: [entry], decoder: entry, naming: (.named("encoder"), .named("decoder")),
                  vocabulary: V, embedding: E, latent: Z, variational: variational)
    }

    /// An `encoder` stack and a `decoder` entry, which must be one unidirectional recurrent entry
    /// (Seq2SeqExperiment.stacks checks a config's).
    public init(encoder encoderSpecs: [LayerSpec], decoder decoderSpec: LayerSpec,
                naming: (encoder: StackNaming, decoder: StackNaming) = (.indexed(prefix: "encoder"),
                                                                       .indexed(prefix: "decoder")),
                vocabulary V: Int, embedding E: Int, latent Z: Int, variational: Bool = false) {
        guard case .recurrent(let r) = decoderSpec, !r.bidirectional else {
            preconditionFailure("a seq2seq decoder is one unidirectional recurrent entry")
        }
        var layout = ParameterLayout()
        embedding = Embedding("embedding", vocabularySize: V, width: E, layout: &layout)
        encoder = LayerStack(encoderSpecs, inputWidth: E, naming: naming.encoder, firstDropoutStream: 1,
                             layout: &layout)
        let O = encoder.outputWidth
        if variational {
            toMean = Linear("to_mean", inFeatures: O, outFeatures: Z, layout: &layout)
            toLogVariance = Linear("to_logvar", inFeatures: O, outFeatures: Z, layout: &layout)
            toLatent = nil
        } else {
            toLatent = Linear("to_latent", inFeatures: O, outFeatures: Z, layout: &layout)
            toMean = nil
            toLogVariance = nil
        }
        toState = Linear("to_state", inFeatures: Z, outFeatures: r.layers * r.hidden, layout: &layout)
        // The shorthand's streams stay 1 (encoder) and 2 (decoder), as before stacks.
        decoderStack = LayerStack([decoderSpec], inputWidth: E, naming: naming.decoder,
                                  firstDropoutStream: 1 + encoderSpecs.count, layout: &layout)
        decoder = decoderStack.recurrentNetworks[0]
        head = Linear("head", inFeatures: r.hidden, outFeatures: V, layout: &layout)
        parameters = ParameterArena(layout)
    }

    public var vocabularySize: Int { head.outFeatures }
    public var latentSize: Int { toState.inFeatures }

    // MARK: encoder

    /// mean (and logVariance) (B, Z) of the sources (B, S) over each one's `lengths`.
    public func encode(_ ids: [Int32], batch B: Int, steps S: Int, lengths given: [Int], dropout: DropoutContext? = nil) throws {
        guard ids.count == B * S, given.count == B else { throw SeqTrainError("expected \(B)×\(S) source ids and \(B) lengths") }
        try ids.withUnsafeBufferPointer { try embedding.validate($0) }
        batch = B
        sourceSteps = S
        lengths = given.map { min(max($0, 1), S) }
        let E = embedding.width, O = encoder.outputWidth, Z = latentSize
        sourceIds = transposeToStepMajor(ids, batch: B, steps: S)
        sourceEmbedded.resize(S * B * E)
        embedding.forward(sourceEmbedded.pointer, sourceIds, count: S * B, parameters: parameters)
        encoder.forward(sourceEmbedded.pointer, layout: .stepMajor, batch: B, steps: S, lengths: lengths,
                        parameters: parameters, dropout: dropout)
        encoded.resize(B * O)
        encoder.gatherFinalStates(encoded.pointer)
        mean.resize(B * Z)
        if let toLatent {
            toLatent.forward(mean.pointer, encoded.pointer, rows: B, parameters: parameters)
        } else {
            toMean!.forward(mean.pointer, encoded.pointer, rows: B, parameters: parameters)
            logVariance.resize(B * Z)
            toLogVariance!.forward(logVariance.pointer, encoded.pointer, rows: B, parameters: parameters)
        }
        useLatent(noise: nil)
    }

    /// z ← μ + exp(logvar / 2) ⊙ ε with `noise` ε (B, Z) (variational training), or z ← μ.
    public func useLatent(noise given: [Float]?) {
        let n = batch * latentSize
        noise.resize(n)
        if let given { noise.copy(from: given) } else { noise.zero() }
        latent.resize(n)
        for i in 0..<n { latent[i] = mean[i] + (variational ? expf(0.5 * logVariance[i]) * noise[i] : 0) }
    }

    /// Decoding from given latents (B, Z), without an encoder pass (`generate --latent`, `--prior`).
    public func setLatent(_ values: [Float], batch B: Int) {
        batch = B
        mean.copy(from: values)
        if variational {
            logVariance.resize(values.count)
            logVariance.zero()
        }
        useLatent(noise: nil)
    }

    /// The decoder's initial (L, B, H) state: tanh(to_state(z)).
    private func initialState() -> RecurrentState {
        let B = batch, H = decoder.hiddenSize, L = decoder.layerCount
        startState.resize(B * L * H)
        toState.forward(startState.pointer, latent.pointer, rows: B, parameters: parameters)
        applyTanh(startState.pointer, startState.pointer, count: B * L * H)
        return RecurrentState.fromRows(startState.pointer, cell: decoder.cellKind, layers: L, batch: B, width: H)
    }

    // MARK: decoder

    /// Teacher forcing in one pass: logits (T, B, V) for the decoder fed `inputs` (B, T).
    public func decode(inputs: [Int32], steps T: Int, dropout: DropoutContext? = nil) throws {
        let B = batch, E = embedding.width, V = vocabularySize
        guard inputs.count == B * T else { throw SeqTrainError("expected \(B)×\(T) decoder inputs") }
        try inputs.withUnsafeBufferPointer { try embedding.validate($0) }
        decoderSteps = T
        decoderIds = transposeToStepMajor(inputs, batch: B, steps: T)
        decoderEmbedded.resize(T * B * E)
        embedding.forward(decoderEmbedded.pointer, decoderIds, count: T * B, parameters: parameters)
        decoder.forward(nil, decoderEmbedded.pointer, inputLayout: .stepMajor, batch: B, steps: T, initial: initialState(), final: nil,
                        parameters: parameters, dropout: dropout)
        logits.resize(T * B * V)
        head.forward(logits.pointer, decoder.outputs, rows: T * B, parameters: parameters)
    }

    /// Starts decoding one step at a time, for inputs chosen from the previous step's logits.
    public func beginDecoding(capacity T: Int, dropout: DropoutContext? = nil) {
        let B = batch
        decoderSteps = 0
        decoderIds = []
        decoderIds.reserveCapacity(T * B)
        logits.resize(T * B * vocabularySize)
        decoder.beginSteps(batch: B, capacity: T, initial: initialState(), parameters: parameters, dropout: dropout)
    }

    /// Feeds `ids` (B) and returns this step's logits (B, V).
    public func decodeStep(_ ids: [Int32]) throws -> UnsafePointer<Float> {
        let B = batch, E = embedding.width, V = vocabularySize, t = decoderSteps
        guard ids.count == B else { throw SeqTrainError("expected \(B) decoder inputs") }
        try ids.withUnsafeBufferPointer { try embedding.validate($0) }
        decoderIds += ids
        stepEmbedded.resize(B * E)
        ids.withUnsafeBufferPointer { embedding.forward(stepEmbedded.pointer, $0.baseAddress!, count: B, parameters: parameters) }
        let out = decoder.step(stepEmbedded.pointer, parameters: parameters)
        let row = logits.pointer + t * B * V
        head.forward(row, out, rows: B, parameters: parameters)
        decoderSteps = t + 1
        return UnsafePointer(row)
    }

    public func endDecoding() { decoder.endSteps(final: nil) }

    /// The KL divergence of N(μ, σ²) from N(0, I) per row, −½ Σ_j (1 + logvar − μ² − e^logvar),
    /// weighted by `rowWeights` (0 leaves a row out) and summed; 0 when not variational.
    public func klDivergence(rowWeights: [Float]) -> Double {
        guard variational else { return 0 }
        let Z = latentSize
        var total = 0.0
        for b in 0..<batch where rowWeights[b] != 0 {
            var row = 0.0
            for j in 0..<Z {
                let m = Double(mean[b * Z + j]), lv = Double(logVariance[b * Z + j])
                row += -0.5 * (1 + lv - m * m - exp(lv))
            }
            total += Double(rowWeights[b]) * row
        }
        return total
    }

    // MARK: backward

    /// Back-propagates dLogits (T, B, V) (the gradient of the loss sum) and `klWeight` times the
    /// KL divergence of the rows `rowWeights` counts, adding every weight gradient. The tokens fed
    /// are constants (a sampled token is one, as in PyTorch's usual implementation).
    public func backward(_ dLogits: UnsafePointer<Float>) { backward(dLogits, klWeight: 0, rowWeights: nil) }

    public func backward(_ dLogits: UnsafePointer<Float>, klWeight: Float, rowWeights: [Float]?) {
        let B = batch, T = decoderSteps, S = sourceSteps, E = embedding.width, H = decoder.hiddenSize
        let L = decoder.layerCount, Z = latentSize, O = encoder.outputWidth
        dDecoded.resize(T * B * H)
        head.backward(dDecoded.pointer, dLogits, decoder.outputs, rows: T * B, parameters: parameters)
        dDecoderEmbedded.resize(T * B * E)
        let dStart = RecurrentState(cell: decoder.cellKind, layers: L, batch: B, width: H)
        decoder.backward(dDecoderEmbedded.pointer, inputLayout: .stepMajor, dDecoded.pointer, outputLayout: .stepMajor,
                         dInitial: dStart, parameters: parameters)
        embedding.backward(dDecoderEmbedded.pointer, decoderIds, count: T * B, parameters: parameters)
        dStart.gradientOfRows(dState, throughTanh: startState)
        dLatent.resize(B * Z)
        toState.backward(dLatent.pointer, dState.pointer, latent.pointer, rows: B, parameters: parameters)
        dEncoded.resize(B * O)
        if let toLatent {
            toLatent.backward(dEncoded.pointer, dLatent.pointer, encoded.pointer, rows: B, parameters: parameters)
        } else {
            // z = μ + e^(lv/2) ε; KL = −½ Σ (1 + lv − μ² − e^lv): ∂/∂μ = μ, ∂/∂lv = ½ (e^lv − 1).
            dMean.resize(B * Z)
            dLogVariance.resize(B * Z)
            for b in 0..<B {
                let w = klWeight * (rowWeights?[b] ?? 1)
                for j in 0..<Z {
                    let i = b * Z + j
                    let sigma = expf(0.5 * logVariance[i])
                    dMean[i] = dLatent[i] + w * mean[i]
                    dLogVariance[i] = dLatent[i] * noise[i] * 0.5 * sigma + w * 0.5 * (sigma * sigma - 1)
                }
            }
            toLogVariance!.backward(dEncoded.pointer, dLogVariance.pointer, encoded.pointer, rows: B, parameters: parameters)
            toMean!.backward(dEncoded.pointer, accumulate: true, dMean.pointer, encoded.pointer, rows: B, parameters: parameters)
        }
        // Only each source's final states reached the latent.
        dEncoderOutputs.resize(encoder.outputStepCount * B * O)
        encoder.scatterFinalStates(dEncoderOutputs.pointer, dEncoded.pointer)
        dSourceEmbedded.resize(S * B * E)
        encoder.backward(dEncoderOutputs.pointer, dInput: dSourceEmbedded.pointer, parameters: parameters)
        embedding.backward(dSourceEmbedded.pointer, sourceIds, count: S * B, parameters: parameters)
    }
}
