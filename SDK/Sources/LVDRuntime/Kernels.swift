#if canImport(Glibc)
import Glibc
#endif

// Element functions as types. The elementwise loops are generic over these, so -O specialises
// each loop for its function and inlines it (and vectorises what it can). A closure captured
// by the threaded loop would instead be an indirect call per element, several times slower.

protocol UnaryKernel {
    func callAsFunction(_ x: Float) -> Float
}

protocol BinaryKernel {
    func callAsFunction(_ a: Float, _ b: Float) -> Float
}

enum Kernel {
    struct Add: BinaryKernel { @inline(__always) func callAsFunction(_ a: Float, _ b: Float) -> Float { a + b } }
    struct Sub: BinaryKernel { @inline(__always) func callAsFunction(_ a: Float, _ b: Float) -> Float { a - b } }
    struct Mul: BinaryKernel { @inline(__always) func callAsFunction(_ a: Float, _ b: Float) -> Float { a * b } }
    struct Div: BinaryKernel { @inline(__always) func callAsFunction(_ a: Float, _ b: Float) -> Float { a / b } }
    struct Maximum: BinaryKernel { @inline(__always) func callAsFunction(_ a: Float, _ b: Float) -> Float { a >= b ? a : b } }
    /// 1 where a ≥ b (the maximum's gradient mask).
    struct GreaterOrEqual: BinaryKernel { @inline(__always) func callAsFunction(_ a: Float, _ b: Float) -> Float { a >= b ? 1 : 0 } }

    struct Neg: UnaryKernel { @inline(__always) func callAsFunction(_ x: Float) -> Float { -x } }
    struct Exp: UnaryKernel { @inline(__always) func callAsFunction(_ x: Float) -> Float { expf(x) } }
    struct Log: UnaryKernel { @inline(__always) func callAsFunction(_ x: Float) -> Float { logf(x) } }
    struct Sqrt: UnaryKernel { @inline(__always) func callAsFunction(_ x: Float) -> Float { x.squareRoot() } }
    struct Sin: UnaryKernel { @inline(__always) func callAsFunction(_ x: Float) -> Float { sinf(x) } }
    struct Cos: UnaryKernel { @inline(__always) func callAsFunction(_ x: Float) -> Float { cosf(x) } }
    struct Tanh: UnaryKernel { @inline(__always) func callAsFunction(_ x: Float) -> Float { tanhf(x) } }
    struct Abs: UnaryKernel { @inline(__always) func callAsFunction(_ x: Float) -> Float { Swift.abs(x) } }
    struct Relu: UnaryKernel { @inline(__always) func callAsFunction(_ x: Float) -> Float { x > 0 ? x : 0 } }
    struct Sigmoid: UnaryKernel { @inline(__always) func callAsFunction(_ x: Float) -> Float { 1 / (1 + expf(-x)) } }
    struct SiLU: UnaryKernel { @inline(__always) func callAsFunction(_ x: Float) -> Float { x / (1 + expf(-x)) } }
    /// Exact GELU: x/2 · (1 + erf(x/√2)).
    struct GELU: UnaryKernel { @inline(__always) func callAsFunction(_ x: Float) -> Float { 0.5 * x * (1 + erff(x * 0.70710678118654752)) } }
    struct Square: UnaryKernel { @inline(__always) func callAsFunction(_ x: Float) -> Float { x * x } }
    struct Pow: UnaryKernel {
        let p: Float
        @inline(__always) func callAsFunction(_ x: Float) -> Float { powf(x, p) }
    }

    // Backward rules that take (gradient, input or output).
    struct SiLUGrad: BinaryKernel {
        @inline(__always) func callAsFunction(_ g: Float, _ x: Float) -> Float {
            let s = 1 / (1 + expf(-x))
            return g * s * (1 + x * (1 - s))
        }
    }
    struct GELUGrad: BinaryKernel {
        @inline(__always) func callAsFunction(_ g: Float, _ x: Float) -> Float {
            let cdf = 0.5 * (1 + erff(x * 0.70710678118654752))
            let pdf = expf(-0.5 * x * x) * 0.39894228040143268
            return g * (cdf + x * pdf)
        }
    }
    /// Any other rule, as a closure (rarely hot).
    struct Closure: BinaryKernel {
        let body: (Float, Float) -> Float
        @inline(__always) func callAsFunction(_ a: Float, _ b: Float) -> Float { body(a, b) }
    }
}
