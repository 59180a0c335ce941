import CKernels

/// The LSTM cell's time loops (PyTorch's `nn.LSTM`), forward and backward side by side.
/// Legend: B batch, T steps, H hidden, G = 4H gates in PyTorch's order i, f, g, o.
///
///     i = σ(x W_iiᵀ + b_ii + h W_hiᵀ + b_hi)      f, o alike
///     g = tanh(x W_igᵀ + b_ig + h W_hgᵀ + b_hg)
///     c′ = f ⊙ c + i ⊙ g,   h′ = o ⊙ tanh(c′)
extension RecurrentNetwork {
    /// Layer l over all steps: gates[l], hidden[l], cell[l], tanhCell[l] filled.
    func lstmForwardLayer(_ l: Int, parameters p: ParameterArena) {
        let H = hiddenSize, G = 4 * H
        projectInputWithBothBiases(l, parameters: p)
        // W_hhᵀ (H, G) packed once for the T steps.
        packedRecurrent.pack(p.value(layers[l].recurrentWeight), ldb: H, transposed: true, depth: H, columns: G)
        for t in 0..<steps { lstmStep(layer: l, at: t, packedRecurrent: packedRecurrent) }
    }

    /// Step t of layer l: the cell's math, written once for this time loop and `step`.
    /// In: gates[l] at t holding the input part x W_ihᵀ + b_ih + b_hh, h and c in slot t.
    /// Out: the activated gates, c′ and h′ in slot t + 1, tanh(c′).
    /// - recurrent: W_hhᵀ (H, G), packed.
    func lstmStep(layer l: Int, at t: Int, packedRecurrent recurrent: PackedMatrix) {
        let B = batch, H = hiddenSize, G = 4 * H
        let g = gates[l].pointer + t * B * G        // (B, G): input part in, activated gates out
        let hPrev = hidden[l].pointer + t * B * H   // (B, H)
        let hNext = hPrev + B * H                   // (B, H)
        let cPrev = cell[l].pointer + t * B * H     // (B, H)
        let cNext = cPrev + B * H                   // (B, H)
        let tc = tanhCell[l].pointer + t * B * H    // (B, H)
        gemmPacked(g, ldc: G, hPrev, lda: H, recurrent, m: B, accumulate: true)  // g += h W_hhᵀ
        // Gates activated, c′ = f ⊙ c + i ⊙ g, tanh(c′), h′ = o ⊙ tanh(c′): one fused pass (CKernels).
        st_lstm_forward_step(g, cPrev, cNext, tc, hNext, Int64(B), Int64(H))
    }

    /// Back-propagation through time for layer l. In: dOutput (T, B, H), dHidden and dCell (B, H)
    /// holding the gradient of the final state. Out: dGates (T, B, G) for the pre-activations,
    /// dHidden and dCell holding the gradient of the initial state.
    func lstmBackwardLayer(_ l: Int, parameters p: ParameterArena) {
        let B = batch, T = steps, H = hiddenSize, G = 4 * H
        // W_hh (G, H) packed once for the T steps.
        packedRecurrent.pack(p.value(layers[l].recurrentWeight), ldb: H, transposed: false, depth: G, columns: H)
        let dh = dHidden.pointer, dc = dCell.pointer  // (B, H) each
        for t in stride(from: T - 1, through: 0, by: -1) {
            if t % 8 == 0 { progressHook?() }
            let g = gates[l].pointer + t * B * G      // (B, G)
            let dg = dGates.pointer + t * B * G       // (B, G)
            let cPrev = cell[l].pointer + t * B * H   // (B, H)
            let tc = tanhCell[l].pointer + t * B * H  // (B, H)
            let dOut = dOutput.pointer + t * B * H    // (B, H)
            // With dh̃ = dOut + dh and dc̃ = dc + dh̃ ⊙ o ⊙ (1 − tanh²c′), one fused pass (CKernels) writes
            //   di = dc̃ ⊙ g ⊙ i(1 − i),  df = dc̃ ⊙ c ⊙ f(1 − f),  dg = dc̃ ⊙ i ⊙ (1 − g²),
            //   do = dh̃ ⊙ tanh(c′) ⊙ o(1 − o),  and dc ← dc̃ ⊙ f.
            st_lstm_backward_step(g, cPrev, tc, dOut, dh, dc, dg, Int64(B), Int64(H))
            gemmPacked(dh, ldc: H, dg, lda: G, packedRecurrent, m: B, accumulate: false)  // dh ← dg W_hh
        }
    }
}
