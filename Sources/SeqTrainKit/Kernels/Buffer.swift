/// A float32 buffer on the heap, 64-byte aligned, that layers keep as workspace between calls.
///
/// It grows on demand and never shrinks, so a layer run on batches of one shape allocates once.
public final class FloatBuffer {
    public private(set) var pointer: UnsafeMutablePointer<Float>
    public private(set) var count: Int
    private var capacity: Int

    public init(count: Int = 0) {
        capacity = max(count, 16)
        pointer = FloatBuffer.allocate(capacity)
        self.count = count
        pointer.initialize(repeating: 0, count: capacity)
    }

    deinit { pointer.deallocate() }

    private static func allocate(_ n: Int) -> UnsafeMutablePointer<Float> {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: n * MemoryLayout<Float>.stride, alignment: 64)
        return raw.bindMemory(to: Float.self, capacity: n)
    }

    /// Makes room for `n` floats. Contents are kept only when `keep` is set; new space is zero.
    public func resize(_ n: Int, keep: Bool = false) {
        if n > capacity {
            let fresh = FloatBuffer.allocate(n)
            fresh.initialize(repeating: 0, count: n)
            if keep { fresh.update(from: pointer, count: count) }
            pointer.deallocate()
            pointer = fresh
            capacity = n
        }
        count = n
    }

    public func zero() { pointer.update(repeating: 0, count: count) }

    public subscript(i: Int) -> Float {
        get { pointer[i] }
        set { pointer[i] = newValue }
    }

    public var array: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }

    public func copy(from values: [Float]) {
        resize(values.count)
        values.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: values.count) }
    }
}
