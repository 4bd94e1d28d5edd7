namespace HsmVault.Consensus.Tests.Simulation;

/// <summary>An application the simulator replicates: deterministic, cheap to compare and to copy.</summary>
internal interface ISimulatedStateMachine : IReplicatedStateMachine
{
    /// <summary>The hash every <see cref="Chain"/> starts from (FNV-1a's offset basis).</summary>
    const ulong InitialChain = 14695981039346656037UL;

    /// <summary>Hash over every (index, command) applied, in order, so members' states compare cheaply.</summary>
    ulong Chain { get; }

    /// <summary>A copy of the state (a backup of the member's data directory).</summary>
    ISimulatedStateMachine Clone();
}
