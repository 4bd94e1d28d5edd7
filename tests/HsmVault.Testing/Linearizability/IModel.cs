using System.Diagnostics.CodeAnalysis;

namespace HsmVault.Testing.Linearizability;

/// <summary>
/// A sequential specification that a concurrent history is checked against (Wing &amp; Gong 1993;
/// the model interface of Porcupine).
/// </summary>
/// <remarks>
/// States are compared with <see cref="EqualityComparer{T}.Default"/>, so they must have value
/// equality (immutable records): the checker memoizes (set of linearized operations, state)
/// pairs it has already explored, as Lowe (2017) and Porcupine do, and two paths that reach
/// an equal state with the same operations placed are the same search node.
/// </remarks>
/// <typeparam name="TState">An immutable state with value equality.</typeparam>
/// <typeparam name="TInput">What a client asks.</typeparam>
/// <typeparam name="TOutput">What a client is answered.</typeparam>
public interface IModel<TState, TInput, TOutput>
{
    /// <summary>The state before any operation.</summary>
    TState Init();

    /// <summary>
    /// Whether <paramref name="input"/> applied to <paramref name="state"/> may answer
    /// <paramref name="output"/>, and the state it leaves behind if so.
    /// </summary>
    [SuppressMessage("Naming", "CA1716:Identifiers should not match keywords", Justification = "Step is the model vocabulary of Porcupine and of the papers this checker follows; models are written in C#.")]
    (bool Ok, TState State) Step(TState state, TInput input, TOutput output);

    /// <summary>
    /// The states an operation whose answer was lost may leave behind if it took effect on
    /// <paramref name="state"/> (one per answer it could have given). "Never took effect" need not
    /// be listed: the checker always allows a pending operation to be left out.
    /// </summary>
    IReadOnlyList<TState> StepUnknown(TState state, TInput input);

    /// <summary>
    /// Whether an operation that answered <paramref name="output"/> leaves <em>every</em> state it
    /// can be applied to unchanged (a read). The checker then places such an operation as soon as
    /// it fits instead of branching on it, which prunes a great deal of concurrent reads. The
    /// default, false, is always safe; true for an operation that can change some state makes the
    /// checker unsound.
    /// </summary>
    bool IsReadOnly(TInput input, TOutput output) => false;

    /// <summary>
    /// Splits a history into sub-histories over independent objects (P-compositionality,
    /// Herlihy &amp; Wing 1990): a history is linearizable iff each part is, and the search is
    /// exponential in the concurrency of one part rather than of the whole.
    /// </summary>
    IReadOnlyList<IReadOnlyList<Operation<TInput, TOutput>>> Partition(IReadOnlyList<Operation<TInput, TOutput>> history) =>
        [history];
}
