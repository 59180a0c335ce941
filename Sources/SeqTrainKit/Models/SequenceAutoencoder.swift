/// What a sequence autoencoder's decoder reads at each step.
public enum DecoderInput: String, CaseIterable {
    /// The latent vector at every step (Keras's RepeatVector); the decoder starts from a zero state.
    case repeatLatent = "repeat"
    /// Its own previous output (zeros at the first step), the state starting from the latent
    /// (h0 = tanh(to_state(z))). The fed output is a constant to back-propagation, as a sampled
    /// token is in a sequence generator.
    case previousOutput = "previous_output"
}

/// Sequence autoencoder: an encoder stack over each sample's valid steps → its final state (the top
/// layer at the last valid step; both directions' final states for a bidirectional top, as h_n) →
/// Linear to the latent → a decoder stack (fed the latent at every step, or its own previous output)
/// → a per-step Linear back to the features (Keras's TimeDistributed(Dense)). The loss over the
/// valid steps is the experiment's; this model takes the gradient of the reconstruction. The
/// PyTorch module with the same state_dict, for the shorthand (`model.cell`, `hidden`, `layers`):
///
///     class Autoencoder(nn.Module):
///         def __init__(s, F, H, Z, L=1, dropout=0.0, decoder_input="repeat"):   # nn.GRU for cell = "gru"
///             super().__init__()
///             s.encoder = nn.LSTM(F, H, L, batch_first=True, dropout=dropout)
///             s.to_latent = nn.Linear(H, Z)
///             if decoder_input == "previous_output": s.to_state = nn.Linear(Z, L * H)
///             s.decoder = nn.LSTM(Z if decoder_input == "repeat" else F, H, L, batch_first=True, dropout=dropout)
///             s.head = nn.Linear(H, F); s.mode, s.L, s.H = decoder_input, L, H
///         def encode(s, x, lengths):                         # x (B, T, F), lengths (B,)
///             out, _ = s.encoder(x)
///             return s.to_latent(out[torch.arange(len(x)), lengths - 1])
///         def forward(s, x, lengths):
///             z = s.encode(x, lengths)
///             if s.mode == "repeat":
///                 out, _ = s.decoder(z[:, None, :].expand(-1, x.shape[1], -1))
///                 return s.head(out), z
///             h = torch.tanh(s.to_state(z)).view(len(x), s.L, s.H).transpose(0, 1).contiguous()
///             state = (h, torch.zeros_like(h))               # GRU: state = h
///             y, outputs = torch.zeros_like(x[:, 0]), []
///             for t in range(x.shape[1]):
///                 out, state = s.decoder(y[:, None, :].detach(), state)
///                 y = s.head(out[:, 0]); outputs.append(y)
///             return torch.stack(outputs, 1), z
///
/// With `[[model.encoder]]` / `[[model.decoder]]` each stack is an `nn.ModuleList` (`encoder.0.weight_ih_l0`,
/// `decoder.1.weight`), run over each sample's valid steps as a packed sequence (launch/seqtrain_torch.py
/// builds it). A decoder that feeds back its own output steps one recurrent entry at a time: it is one
/// unidirectional LSTM or GRU entry (`to_state` gives its L·H initial state).
///
/// Legend: B batch, T steps, F features, O_e and O_d the stacks' output widths, Z latent, L and H the
/// stepped decoder's layers and hidden width. Buffers are step-major (T, B, ·).
public final class SequenceAutoencoder: TrainableModel {
    public let encoder: LayerStack
    public let toLatent: Linear
    public let toState: Linear?
    public let decoder: LayerStack
    /// The decoder's one recurrent network, stepped on its own outputs (previous_output).
    let steppedDecoder: RecurrentNetwork?
    public let head: Linear
    public let parameters: ParameterArena
    public let decoderInput: DecoderInput
    public var recurrentStacks: [RecurrentNetwork] { encoder.recurrentNetworks + decoder.recurrentNetworks }
    public var output: FloatBuffer { reconstruction }
    public var forwardOutputs: [(name: String, values: FloatBuffer)] {
        encoder.layerOutputs + [("latent", latent)] + decoder.layerOutputs
            + [("head output (reconstruction)", reconstruction)]
    }

    public let latent = FloatBuffer()          // (B, Z)
    public let reconstruction = FloatBuffer()  // (T, B, F)
    private let encoded = FloatBuffer()        // (B, O_e): the encoder's final states
    private let decoderInputs = FloatBuffer()  // (T, B, Z): the latent repeated
    private let initialState = FloatBuffer()   // (B, L·H): tanh(to_state(z)) (previous_output)
    /// (T, B, F): the input step-major, the target a reconstruction loss reads.
    public let target = FloatBuffer()
    /// (T, B, F): where the experiment's loss writes its gradient for `backward`.
    public let dReconstruction = FloatBuffer()
    private let dDecoded = FloatBuffer()       // (T, B, O_d)
    private let dInputs = FloatBuffer()        // (T, B, Z)
    private let dLatent = FloatBuffer()        // (B, Z)
    private let dEncoded = FloatBuffer()       // (B, O_e)
    private let dEncoderOutputs = FloatBuffer()  // (T′, B, O_e)
    private let dState = FloatBuffer()         // (B, L·H)
    private(set) var lengths: [Int] = []
    public private(set) var batch = 0, steps = 0

    /// The shorthand model: one recurrent entry each, named `encoder` and `decoder`.
    public convenience init(cell: RecurrentCell = .lstm, features: Int, hiddenSize: Int, latentSize: Int,
                            layers: Int = 1, dropout: Float = 0, decoderInput: DecoderInput = .repeatLatent) {
        let entry = LayerSpec.recurrent(RecurrentSpec(cell: cell, hidden: hiddenSize, layers: layers,
                                                      dropout: Double(dropout)))
        self.init(encoder: [entry], decoder: [entry], naming: (.named("encoder"), .named("decoder")),
                  features: features, latentSize: latentSize, decoderInput: decoderInput)
    }

    /// `encoder` and `decoder` stacks (checked: a previous_output decoder is one unidirectional
    /// recurrent entry, and the decoder keeps the number of steps).
    public init(encoder encoderSpecs: [LayerSpec], decoder decoderSpecs: [LayerSpec],
                naming: (encoder: StackNaming, decoder: StackNaming) = (.indexed(prefix: "encoder"),
                                                                       .indexed(prefix: "decoder")),
                features: Int, latentSize: Int, decoderInput: DecoderInput = .repeatLatent) {
        var layout = ParameterLayout()
        encoder = LayerStack(encoderSpecs, inputWidth: features, naming: naming.encoder, layout: &layout)
        toLatent = Linear("to_latent", inFeatures: encoder.outputWidth, outFeatures: latentSize, layout: &layout)
        var stateWidth = 0
        if decoderInput == .previousOutput, case .recurrent(let r) = decoderSpecs[0] {
            stateWidth = r.layers * r.hidden
        }
        toState = decoderInput == .previousOutput
            ? Linear("to_state", inFeatures: latentSize, outFeatures: stateWidth, layout: &layout) : nil
        decoder = LayerStack(decoderSpecs, inputWidth: decoderInput == .repeatLatent ? latentSize : features,
                             naming: naming.decoder, firstDropoutStream: 1 + encoderSpecs.count, layout: &layout)
        steppedDecoder = decoderInput == .previousOutput ? decoder.recurrentNetworks.first : nil
        head = Linear("head", inFeatures: decoder.outputWidth, outFeatures: features, layout: &layout)
        parameters = ParameterArena(layout)
        self.decoderInput = decoderInput
    }

    public var features: Int { head.outFeatures }
    public var latentSize: Int { toLatent.outFeatures }

    /// latent (B, Z) ← the encoding of x (B, T, F) over each sample's `lengths` (nil: all T steps).
    public func encode(_ x: UnsafePointer<Float>, batch B: Int, steps T: Int, lengths given: [Int]? = nil,
                       dropout: DropoutContext? = nil) {
        batch = B
        steps = T
        lengths = (given ?? [Int](repeating: T, count: B)).map { min(max($0, 1), T) }
        encoder.forward(x, batch: B, steps: T, lengths: lengths, parameters: parameters, dropout: dropout)
        encoded.resize(B * encoder.outputWidth)
        encoder.gatherFinalStates(encoded.pointer)
        latent.resize(B * latentSize)
        toLatent.forward(latent.pointer, encoded.pointer, rows: B, parameters: parameters)
    }

    /// What the decoder was fed at every step of the last forward, (T, B, F) (previous_output).
    public let fedOutputs = FloatBuffer()

    /// reconstruction (T, B, F) of x (B, T, F): encode, then decode for T steps. `feed` (T, B, F),
    /// for previous_output, replaces the outputs fed back with given constants (a gradient check
    /// holds them at the values of one pass, as back-propagation treats them).
    public func forward(_ x: UnsafePointer<Float>, batch B: Int, steps T: Int, lengths: [Int]? = nil,
                        dropout: DropoutContext? = nil, feed: UnsafePointer<Float>? = nil) {
        encode(x, batch: B, steps: T, lengths: lengths, dropout: dropout)
        let Z = latentSize, F = features
        reconstruction.resize(T * B * F)
        guard let stepped = steppedDecoder, let toState else {
            decoderInputs.resize(T * B * Z)
            for t in 0..<T { (decoderInputs.pointer + t * B * Z).update(from: latent.pointer, count: B * Z) }
            decoder.forward(decoderInputs.pointer, layout: .stepMajor, batch: B, steps: T, lengths: self.lengths,
                            parameters: parameters, dropout: dropout)
            head.forward(reconstruction.pointer, decoder.output, rows: T * B, parameters: parameters)
            return
        }
        let H = stepped.hiddenSize, L = stepped.layerCount
        initialState.resize(B * L * H)
        toState.forward(initialState.pointer, latent.pointer, rows: B, parameters: parameters)
        applyTanh(initialState.pointer, initialState.pointer, count: B * L * H)
        let start = RecurrentState.fromRows(initialState.pointer, cell: stepped.cellKind, layers: L, batch: B, width: H)
        stepped.beginSteps(batch: B, capacity: T, initial: start, parameters: parameters, dropout: dropout)
        fedOutputs.resize(T * B * F)
        for t in 0..<T {
            let fed = fedOutputs.pointer + t * B * F  // (B, F): zeros, then the previous output
            if let feed {
                fed.update(from: feed + t * B * F, count: B * F)
            } else if t == 0 {
                fed.update(repeating: 0, count: B * F)
            } else {
                fed.update(from: reconstruction.pointer + (t - 1) * B * F, count: B * F)
            }
            let out = stepped.step(fed, parameters: parameters)
            head.forward(reconstruction.pointer + t * B * F, out, rows: B, parameters: parameters)
        }
        stepped.endSteps(final: nil)
    }

    /// Back-propagates dReconstruction (T, B, F) (the gradient of the loss sum), adding every weight
    /// gradient.
    public func backward(_ dY: UnsafePointer<Float>) {
        let B = batch, T = steps, Z = latentSize
        dDecoded.resize(T * B * decoder.outputWidth)
        let decoded = steppedDecoder?.outputs ?? decoder.output
        head.backward(dDecoded.pointer, dY, decoded, rows: T * B, parameters: parameters)
        dLatent.resize(B * Z)
        if let stepped = steppedDecoder, let toState {
            let L = stepped.layerCount, H = stepped.hiddenSize
            let dStart = RecurrentState(cell: stepped.cellKind, layers: L, batch: B, width: H)
            stepped.backward(nil, dDecoded.pointer, outputLayout: .stepMajor, dInitial: dStart, parameters: parameters)
            dStart.gradientOfRows(dState, throughTanh: initialState)
            toState.backward(dLatent.pointer, dState.pointer, latent.pointer, rows: B, parameters: parameters)
        } else {
            dInputs.resize(T * B * Z)
            decoder.backward(dDecoded.pointer, dInput: dInputs.pointer, parameters: parameters)
            // The latent was fed at every step: its gradient is the sum over the steps.
            dLatent.pointer.update(from: dInputs.pointer, count: B * Z)
            for t in 1..<max(T, 1) { addInPlace(dLatent.pointer, dInputs.pointer + t * B * Z, count: B * Z) }
        }
        dEncoded.resize(B * encoder.outputWidth)
        toLatent.backward(dEncoded.pointer, dLatent.pointer, encoded.pointer, rows: B, parameters: parameters)
        // Only each sample's final states reached the latent.
        dEncoderOutputs.resize(encoder.outputStepCount * B * encoder.outputWidth)
        encoder.scatterFinalStates(dEncoderOutputs.pointer, dEncoded.pointer)
        encoder.backward(dEncoderOutputs.pointer, parameters: parameters)
    }
}
