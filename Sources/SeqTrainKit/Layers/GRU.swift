/// The GRU cell's time loops (PyTorch's `nn.GRU`), forward and backward side by side.
/// Legend: B batch, T steps, H hidden, G = 3H gates in PyTorch's order r, z, n.
///
///     r = σ(x W_irᵀ + b_ir + h W_hrᵀ + b_hr)     z alike
///     n = tanh(x W_inᵀ + b_in + r ⊙ (h W_hnᵀ + b_hn))
///     h′ = (1 − z) ⊙ n + z ⊙ h
extension RecurrentNetwork {
    /// Layer l over all steps: gates[l] (r, z, n), hidden[l], and cell[l] holding W_hn h + b_hn.
    func gruForwardLayer(_ l: Int, parameters p: ParameterArena) {
        let B = batch, T = steps, H = hiddenSize, G = 3 * H
        let w = layers[l]
        projectInput(l, bias: p.value(w.inputBias), parameters: p)
        let whh = p.value(w.recurrentWeight), bhh = p.value(w.recurrentBias)  // (G, H), (G)
        stepScratch.resize(B * G)
        let gh = stepScratch.pointer                    // (B, G): h W_hhᵀ + b_hh of this step
        for t in 0..<T {
            let g = gates[l].pointer + t * B * G        // (B, G)
            let hPrev = hidden[l].pointer + t * B * H   // (B, H)
            let hNext = hPrev + B * H                   // (B, H)
            let hn = cell[l].pointer + t * B * H        // (B, H)
            broadcastRows(gh, bhh, rowCount: B, width: G)
            gemm(gh, ldc: G, hPrev, lda: H, whh, ldb: H, transposeB: true, m: B, n: G, k: H, beta: 1)
            for b in 0..<B {
                let o = b * H
                let gr = g + b * G, gz = gr + H, gn = gr + 2 * H
                let hr = gh + b * G, hz = hr + H, hnb = hr + 2 * H
                let hp = hPrev + o, hx = hNext + o, hs = hn + o
                for j in 0..<H {
                    let r = sigmoid(gr[j] + hr[j])
                    let z = sigmoid(gz[j] + hz[j])
                    let n = fastTanh(gn[j] + r * hnb[j])
                    gr[j] = r; gz[j] = z; gn[j] = n
                    hs[j] = hnb[j]
                    hx[j] = (1 - z) * n + z * hp[j]
                }
            }
        }
    }

    /// Back-propagation through time for layer l. In: dOutput (T, B, H), dHidden (B, H) the gradient
    /// of the final state. Out: dGates (T, B, G) as seen by W_ih and b_ih, dRecurrentGates (T, B, G)
    /// as seen by W_hh and b_hh (the n part times r), dHidden the gradient of the initial state.
    func gruBackwardLayer(_ l: Int, parameters p: ParameterArena) {
        let B = batch, T = steps, H = hiddenSize, G = 3 * H
        let whh = p.value(layers[l].recurrentWeight)  // (G, H)
        let dh = dHidden.pointer                      // (B, H)
        for t in stride(from: T - 1, through: 0, by: -1) {
            if t % 8 == 0 { progressHook?() }
            let g = gates[l].pointer + t * B * G           // (B, G)
            let dgx = dGates.pointer + t * B * G           // (B, G)
            let dgh = dRecurrentGates.pointer + t * B * G  // (B, G)
            let hPrev = hidden[l].pointer + t * B * H      // (B, H)
            let hn = cell[l].pointer + t * B * H           // (B, H)
            let dOut = dOutput.pointer + t * B * H         // (B, H)
            for b in 0..<B {
                let o = b * H
                let gr = g + b * G, gz = gr + H, gn = gr + 2 * H
                let dxr = dgx + b * G, dxz = dxr + H, dxn = dxr + 2 * H
                let dhr = dgh + b * G, dhz = dhr + H, dhn = dhr + 2 * H
                let dOutB = dOut + o, dhB = dh + o, hp = hPrev + o, hs = hn + o
                for j in 0..<H {
                    let dhk = dOutB[j] + dhB[j]
                    let r = gr[j], z = gz[j], n = gn[j]
                    let dnPre = dhk * (1 - z) * (1 - n * n)
                    let drPre = dnPre * hs[j] * r * (1 - r)
                    let dzPre = dhk * (hp[j] - n) * z * (1 - z)
                    dxr[j] = drPre; dxz[j] = dzPre; dxn[j] = dnPre
                    dhr[j] = drPre; dhz[j] = dzPre; dhn[j] = dnPre * r
                    dhB[j] = dhk * z
                }
            }
            gemm(dh, ldc: H, dgh, lda: G, whh, ldb: H, m: B, n: H, k: G, beta: 1)  // dh += dgh W_hh
        }
    }
}
