import Foundation

/// The Elman RNN's time loops (PyTorch's `nn.RNN`), forward and backward side by side.
/// Legend: B batch, T steps, H hidden; its one "gate" is the output itself.
///
///     h′ = tanh(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh)      (or relu, `nonlinearity = "relu"`)
extension RecurrentNetwork {
    /// Layer l over all steps: gates[l] and hidden[l] both hold h′ (gates for backward's f′).
    func rnnForwardLayer(_ l: Int, parameters p: ParameterArena) {
        let H = hiddenSize
        projectInputWithBothBiases(l, parameters: p)
        // W_hhᵀ (H, H) packed once for the T steps.
        packedRecurrent.pack(p.value(layers[l].recurrentWeight), ldb: H, transposed: true, depth: H, columns: H)
        for t in 0..<steps { rnnStep(layer: l, at: t, packedRecurrent: packedRecurrent) }
    }

    /// Step t of layer l: the cell's math, written once for this time loop and `step`.
    /// In: gates[l] at t holding the input part x W_ihᵀ + b_ih + b_hh, h in slot t.
    /// Out: h′ = f(…) in both the gates (for backward's f′) and slot t + 1.
    /// - recurrent: W_hhᵀ (H, H), packed.
    func rnnStep(layer l: Int, at t: Int, packedRecurrent recurrent: PackedMatrix) {
        let B = batch, H = hiddenSize, n = B * H
        let g = gates[l].pointer + t * n        // (B, H): input part in, h′ out
        let hPrev = hidden[l].pointer + t * n   // (B, H)
        gemmPacked(g, ldc: H, hPrev, lda: H, recurrent, m: B, accumulate: true)  // g += h W_hhᵀ
        switch nonlinearity {
        case .tanh: applyTanh(g, g, count: n)
        case .relu: for i in 0..<n { g[i] = max(g[i], 0) }
        }
        (hPrev + n).update(from: g, count: n)
    }

    /// Back-propagation through time for layer l. In: dOutput (T, B, H), dHidden (B, H) the gradient
    /// of the final state. Out: dGates (T, B, H) for the pre-activations, dHidden the gradient of the
    /// initial state.
    func rnnBackwardLayer(_ l: Int, parameters p: ParameterArena) {
        let B = batch, T = steps, H = hiddenSize, n = B * H
        // W_hh (H, H) packed once for the T steps.
        packedRecurrent.pack(p.value(layers[l].recurrentWeight), ldb: H, transposed: false, depth: H, columns: H)
        let dh = dHidden.pointer                      // (B, H)
        for t in stride(from: T - 1, through: 0, by: -1) {
            if t % 8 == 0 { progressHook?() }
            let y = gates[l].pointer + t * B * H      // (B, H): h′ of step t
            let dg = dGates.pointer + t * B * H       // (B, H)
            let dOut = dOutput.pointer + t * B * H    // (B, H)
            // dg = (dOut + dh) ⊙ f′, with f′ = 1 − h′² (tanh) or [h′ > 0] (relu).
            switch nonlinearity {
            case .tanh: for i in 0..<n { dg[i] = (dOut[i] + dh[i]) * (1 - y[i] * y[i]) }
            case .relu: for i in 0..<n { dg[i] = y[i] > 0 ? dOut[i] + dh[i] : 0 }
            }
            gemmPacked(dh, ldc: H, dg, lda: H, packedRecurrent, m: B, accumulate: false)  // dh ← dg W_hh
        }
    }
}
