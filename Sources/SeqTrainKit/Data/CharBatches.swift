/// Batches of a character stream for truncated back-propagation through time.
///
/// Stateful (`training.stateful = true`): the ids are cut into `lanes` contiguous lanes of equal
/// length; batch k of lane j is the k-th stretch of `steps` characters of lane j, so it continues
/// batch k−1 of the same lane and the model's state carries over. The last batch of an epoch is
/// shorter when the lane length is not a multiple of `steps`; the last (n − 1) mod lanes characters
/// of the text are not used.
///
/// Windowed (`stateful = false`): independent windows of `steps` + 1 characters, shuffled every
/// epoch by a permutation of (seed, epoch) that every rank computes alike. A short last batch has
/// its missing rows masked.
public struct CharBatches {
    public let ids: [Int32]
    public let lanes: Int          // global batch rows
    public let steps: Int
    public let stateful: Bool
    public let seed: UInt64

    /// Stateful: characters per lane (inputs); lane j starts at j · laneLength.
    public let laneLength: Int
    /// Windowed: number of windows.
    public let windowCount: Int

    public init(ids: [Int32], lanes: Int, steps: Int, stateful: Bool, seed: UInt64, what: String = "training text") throws {
        self.ids = ids
        self.lanes = lanes
        self.steps = steps
        self.stateful = stateful
        self.seed = seed
        laneLength = max(ids.count - 1, 0) / lanes
        windowCount = max(ids.count - 1, 0) / steps
        if stateful && laneLength < 1 {
            throw SeqTrainError("the \(what) has \(ids.count) characters, too few for \(lanes) lanes (training.batch_size); give more text or a smaller batch_size")
        }
        if !stateful && windowCount < 1 {
            throw SeqTrainError("the \(what) has \(ids.count) characters, too few for one window of training.seq_len = \(steps) + 1")
        }
    }

    public var batchesPerEpoch: Int {
        stateful ? batchCount(laneLength, batchSize: steps) : batchCount(windowCount, batchSize: lanes)
    }

    /// One rank's part of a batch, batch-first: inputs and targets (rows, steps), mask (rows, steps)
    /// of 1 for counted positions, and a global key per row for dropout.
    public struct Batch {
        public var inputs: [Int32]
        public var targets: [Int32]
        public var mask: [Float]?
        public var rowKeys: [UInt64]
        public let rows: Int
        public let steps: Int
    }

    /// Batch k of `epoch`, rows `rows` of the global batch (this rank's share).
    public func batch(_ k: Int, epoch: Int, rows: Range<Int>) -> Batch {
        if stateful {
            let start = k * steps
            let t = min(steps, laneLength - start)
            var inputs = [Int32](repeating: 0, count: rows.count * t), targets = inputs
            for (r, lane) in rows.enumerated() {
                let base = lane * laneLength + start
                for s in 0..<t {
                    inputs[r * t + s] = ids[base + s]
                    targets[r * t + s] = ids[base + s + 1]
                }
            }
            return Batch(inputs: inputs, targets: targets, mask: nil, rowKeys: rows.map { UInt64($0) }, rows: rows.count, steps: t)
        }
        let order = CounterRandom(seed: seed, purpose: .shuffle).permutation(windowCount, stream: UInt64(epoch))
        var inputs = [Int32](repeating: 0, count: rows.count * steps), targets = inputs
        var mask = [Float](repeating: 1, count: rows.count * steps)
        var keys: [UInt64] = []
        var masked = false
        for (r, row) in rows.enumerated() {
            let slot = k * lanes + row
            guard slot < windowCount else {
                for s in 0..<steps { mask[r * steps + s] = 0 }
                keys.append(UInt64.max - UInt64(row))
                masked = true
                continue
            }
            let window = order[slot]
            keys.append(UInt64(window))
            for s in 0..<steps {
                inputs[r * steps + s] = ids[window * steps + s]
                targets[r * steps + s] = ids[window * steps + s + 1]
            }
        }
        return Batch(inputs: inputs, targets: targets, mask: masked ? mask : nil, rowKeys: keys, rows: rows.count, steps: steps)
    }
}

/// The rows of a global batch of `total` that rank `rank` of `world` owns: a contiguous block, so in
/// stateful training lane j stays on rank j / (total / world) for the whole run.
public func shard(_ total: Int, rank: Int, world: Int) -> Range<Int> {
    let share = total / world
    return rank * share..<(rank + 1) * share
}

/// Replica `rank`'s share of `count` validation items (samples, lanes, origins): contiguous, the
/// last shares shorter or empty, so every item is counted once whatever the number of replicas.
public func validationShare(_ count: Int, rank: Int, world: Int) -> Range<Int> {
    let share = (count + world - 1) / world
    return min(rank * share, count)..<min((rank + 1) * share, count)
}
