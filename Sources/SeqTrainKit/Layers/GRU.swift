import CKernels

/// The GRU cell's time loops (PyTorch's `nn.GRU`), forward and backward side by side.
/// Legend: B batch, T steps, H hidden, G = 3H gates in PyTorch's order r, z, n.
///
///     r = σ(x W_irᵀ + b_ir + h W_hrᵀ + b_hr)     z alike
///     n = tanh(x W_inᵀ + b_in + r ⊙ (h W_hnᵀ + b_hn))
///     h′ = (1 − z) ⊙ n + z ⊙ h
extension RecurrentNetwork {
    /// Layer l over all steps: gates[l] (r, z, n), hidden[l], and cell[l] holding W_hn h + b_hn.
    func gruForwardLayer(_ l: Int, parameters p: ParameterArena) {
        let H = hiddenSize, G = 3 * H
        let w = layers[l]
        projectInput(l, bias: p.value(w.inputBias), parameters: p)
        // W_hhᵀ (H, G) packed once for the T steps.
        packedRecurrent.pack(p.value(w.recurrentWeight), ldb: H, transposed: true, depth: H, columns: G)
        stepScratch.resize(batch * G)
        let bhh = p.value(w.recurrentBias)  // (G)
        for t in 0..<steps { gruStep(layer: l, at: t, packedRecurrent: packedRecurrent, recurrentBias: bhh) }
    }

    /// Step t of layer l: the cell's math, written once for this time loop and `step`.
    /// In: gates[l] at t holding the input part x W_ihᵀ + b_ih, h in slot t; stepScratch of (B, G).
    /// Out: r, z, n in the gates, h′ in slot t + 1, cell[l] at t holding W_hn h + b_hn.
    /// - recurrent: W_hhᵀ (H, G), packed. recurrentBias: b_hh (G).
    func gruStep(layer l: Int, at t: Int, packedRecurrent recurrent: PackedMatrix,
                 recurrentBias bhh: UnsafePointer<Float>) {
        let B = batch, H = hiddenSize, G = 3 * H
        let g = gates[l].pointer + t * B * G        // (B, G)
        let gh = stepScratch.pointer                // (B, G): h W_hhᵀ + b_hh of this step
        let hPrev = hidden[l].pointer + t * B * H   // (B, H)
        let hNext = hPrev + B * H                   // (B, H)
        let hn = cell[l].pointer + t * B * H        // (B, H)
        broadcastRows(gh, bhh, rowCount: B, width: G)
        gemmPacked(gh, ldc: G, hPrev, lda: H, recurrent, m: B, accumulate: true)  // gh += h W_hhᵀ
        // r, z = σ(…), n = tanh(x part + r ⊙ (W_hn h + b_hn)), h′ = (1 − z) ⊙ n + z ⊙ h:
        // one fused pass (CKernels).
        st_gru_forward_step(g, gh, hPrev, hNext, hn, Int64(B), Int64(H))
    }

    /// Back-propagation through time for layer l. In: dOutput (T, B, H), dHidden (B, H) the gradient
    /// of the final state. Out: dGates (T, B, G) as seen by W_ih and b_ih, dRecurrentGates (T, B, G)
    /// as seen by W_hh and b_hh (the n part times r), dHidden the gradient of the initial state.
    func gruBackwardLayer(_ l: Int, parameters p: ParameterArena) {
        let B = batch, T = steps, H = hiddenSize, G = 3 * H
        // W_hh (G, H) packed once for the T steps.
        packedRecurrent.pack(p.value(layers[l].recurrentWeight), ldb: H, transposed: false, depth: G, columns: H)
        let dh = dHidden.pointer                      // (B, H)
        for t in stride(from: T - 1, through: 0, by: -1) {
            if t % 8 == 0 { progressHook?() }
            let g = gates[l].pointer + t * B * G           // (B, G)
            let dgx = dGates.pointer + t * B * G           // (B, G)
            let dgh = dRecurrentGates.pointer + t * B * G  // (B, G)
            let hPrev = hidden[l].pointer + t * B * H      // (B, H)
            let hn = cell[l].pointer + t * B * H           // (B, H)
            let dOut = dOutput.pointer + t * B * H         // (B, H)
            // With dh̃ = dOut + dh: dn = dh̃ (1 − z)(1 − n²), dr = dn ⊙ (W_hn h + b_hn) ⊙ r(1 − r),
            // dz = dh̃ ⊙ (h − n) ⊙ z(1 − z); W_hh sees dn ⊙ r for the n gate; dh ← dh̃ ⊙ z (CKernels).
            st_gru_backward_step(g, hPrev, hn, dOut, dh, dgx, dgh, Int64(B), Int64(H))
            gemmPacked(dh, ldc: H, dgh, lda: G, packedRecurrent, m: B, accumulate: true)  // dh += dgh W_hh
        }
    }
}
