using System.Globalization;
using HsmVault.Testing.Linearizability;
using HsmVault.Testing.Vault;
using HsmVault.Vault;
using HsmVault.Vault.State;

namespace HsmVault.Consensus.Tests.Simulation.Vault;

/// <summary>Thrown when the clients' history of a simulated run is not linearizable or exceeds a guess budget.</summary>
public sealed class HistoryViolationException(string message) : Exception(message);

/// <summary>
/// Clients of the vault, served the way <c>VaultService</c> serves them, through the simulated fleet: each client
/// operation starts at the member the client believes leads, reads after a ReadIndex barrier where the service
/// does, and proposes the vault's own commands; the members apply them with <see cref="RecordTransitions"/>.
/// Every operation is recorded in a <see cref="HistoryRecorder{TInput, TOutput}"/> timed by the simulator, and
/// at the end the history must pass <see cref="VaultHistory.Verify"/>: linearizable per user, and no guess
/// budget exceeded. With <see cref="SimulationOptions.RouteThroughAnyMember"/>, a client talks to any member and the
/// member serves it as the daemon does, through its <see cref="LeaderRouter"/>: a read barrier (a read index from the
/// leader when it follows), then the command signed by that member and forwarded to the leader.
/// </summary>
/// <remarks>
/// How operations are recorded: an answer is recorded when the proposing member applies the entry it proposed
/// (same index and term) or serves the read. A proposal whose fate is unknown (the member crashed, a different
/// entry took its index, or no answer within <see cref="AttemptTicks"/>) leaves the operation pending
/// (<c>Fail</c>): it may take effect at any later time, or never. An operation that ends before anything it
/// proposed could take effect (no leader, a read barrier never confirmed, or a version conflict on its last
/// attempt, which changes nothing) is discarded, as the service answers an error that changed nothing. Through a
/// router: an unknown outcome, or the serving member's crash after it proposed, leaves the operation pending; a
/// refusal before anything was proposed (no leader in time) discards it.
/// </remarks>
internal sealed class VaultWorkload : IWorkload, IDisposable
{
    /// <summary>Ticks an attempt waits for its read barrier or its commit before the client gives up (5 election timeouts).</summary>
    public const int AttemptTicks = 50;

    /// <summary>The service retries a version conflict this many times with a fresh read (VaultService.MaxVersionConflictRetries).</summary>
    private const int MaxVersionConflictRetries = 3;

    /// <summary>Per tick: chance that an idle client starts an operation.</summary>
    private const double StartRate = 0.2;

    private static readonly UserIdentity MarkerUser = new("sim", "liveness-marker");
    private static readonly byte[] SealedBlob = [0x5e, 0xa1];
    private long _ticketNonces;

    private readonly Simulation _simulation;
    private readonly TestMembers _fleet;
    private readonly List<ProductionVaultState> _states = [];
    private readonly HistoryRecorder<VaultInput, VaultOutput> _history;
    private readonly UserIdentity[] _users;
    private readonly Client[] _clients;
    private readonly Dictionary<SimMember, InFlight> _inFlight = [];
    private readonly List<ClientOperation> _toPropose = [];
    private readonly List<ClientOperation> _toRead = [];

    public VaultWorkload(Simulation simulation)
    {
        _simulation = simulation;
        _fleet = TestMembers.WithEd25519Identities([.. simulation.Ids]);
        _history = new HistoryRecorder<VaultInput, VaultOutput>(simulation.EventTime);
        _users = [.. Enumerable.Range(0, simulation.Options.Users).Select(i => new UserIdentity("sim", $"user{i}"))];
        _clients = [.. Enumerable.Range(0, simulation.Options.Clients).Select(i => new Client(i))];
    }

    public int Operations => _history.History().Count;

    /// <summary>Clients are served at any member through its <see cref="LeaderRouter"/> (<see cref="SimulationOptions.RouteThroughAnyMember"/>).</summary>
    private bool Routed => _simulation.Options.RouteThroughAnyMember;

    public int UnknownOutcomes => _history.History().Count(op => op.IsPending);

    public ulong InitialChain => ProductionVaultState.InitialChain;

    public ISimulatedStateMachine CreateStateMachine() => ProductionVaultState.Create(_fleet, _simulation.Options.PlantedBug, _states);

    public void Dispose()
    {
        _states.ForEach(s => s.Dispose());
        _fleet.Dispose();
    }

    public void Act(bool faultPhase)
    {
        // Continuations decided while a member was handling a Ready run now, outside it.
        var reads = _toRead.ToArray();
        _toRead.Clear();
        // An earlier one may have crashed a member and so ended operations further down the list.
        foreach (var op in reads.Where(op => op.Client.Current == op))
        {
            StartRead(op);
        }

        var proposals = _toPropose.ToArray();
        _toPropose.Clear();
        foreach (var op in proposals.Where(op => op.Client.Current == op))
        {
            Propose(op);
        }

        GiveUpOnLateAttempts();
        if (!faultPhase)
        {
            return;
        }

        foreach (var client in _clients)
        {
            if (client.Current is null && _simulation.Random.NextDouble() < StartRate)
            {
                StartOperation(client);
            }
        }
    }

    public ProposalTicket? ProposeMarker(SimMember leader) =>
        leader.Node?.Propose(_fleet.Sign(new DeleteCommand(MarkerUser, 0), leader.Id));

    public void Applied(SimMember member, LogEntry entry, byte[] result)
    {
        if (!_inFlight.TryGetValue(member, out var inFlight) || !inFlight.Proposals.Remove(entry.Index, out var proposal))
        {
            return;
        }

        if (proposal.Term != entry.Term)
        {
            // Another leader's entry took this index: the member would answer Unavailable, and the client cannot
            // know whether some copy of its command commits elsewhere.
            End(proposal.Operation, Ending.Unknown);
            return;
        }

        var decoded = VaultCommandCodec.DecodeResult(result);
        Answered(proposal.Operation, decoded);
    }

    public void ReadReady(SimMember member, ReadState read)
    {
        if (_inFlight.TryGetValue(member, out var inFlight) && inFlight.Reads.Remove(read.RequestId, out var op))
        {
            Read(op, (ProductionVaultState)member.StateMachine);
        }
    }

    public void ReadDropped(SimMember member, ulong requestId)
    {
        if (_inFlight.TryGetValue(member, out var inFlight) && inFlight.Reads.Remove(requestId, out var op))
        {
            End(op, Ending.NoEffect);
        }
    }

    public void Crashed(SimMember member)
    {
        // An operation served through the member's router dies with the member; what it forwarded may still commit.
        foreach (var op in _clients.Select(c => c.Current).OfType<ClientOperation>().Where(op => Routed && op.Member == member).ToList())
        {
            End(op, op.Proposed ? Ending.Unknown : Ending.NoEffect);
        }

        if (!_inFlight.Remove(member, out var inFlight))
        {
            return;
        }

        foreach (var op in inFlight.Proposals.Values.Select(p => p.Operation))
        {
            End(op, Ending.Unknown);
        }

        foreach (var op in inFlight.Reads.Values)
        {
            End(op, Ending.NoEffect);
        }
    }

    public void Finish()
    {
        // Whatever is still in flight never got an answer.
        foreach (var client in _clients)
        {
            if (client.Current is { } op)
            {
                End(op, op.Proposed ? Ending.Unknown : Ending.NoEffect);
            }
        }

        var history = _history.History();
        var report = VaultHistory.Verify(history, TimeSpan.FromSeconds(20));
        if (!report.Passed)
        {
            throw new HistoryViolationException($"History of {history.Count} operations rejected: {report}");
        }
    }

    private InFlight At(SimMember member)
    {
        if (!_inFlight.TryGetValue(member, out var inFlight))
        {
            inFlight = new InFlight();
            _inFlight[member] = inFlight;
        }

        return inFlight;
    }

    private void StartOperation(Client client)
    {
        var random = _simulation.Random;
        var members = _simulation.Members;

        // Routed, the client talks to any member, which serves it through its router as the daemon does. Otherwise it
        // talks to the member it believes leads, and a follower tells it who does.
        var target = Routed ? members[random.Next(members.Count)] : client.Leader;
        if (Routed && target is { Raft: null })
        {
            return; // the member is down: the client's call is refused and changes nothing
        }

        if (target is null || (!Routed && target.Node is not { Role: RaftRole.Leader }))
        {
            var hint = target?.Node?.LeaderId;
            client.Leader = hint is null ? members[random.Next(members.Count)] : members.First(m => m.Id == hint);
            return;
        }

        var user = random.Next(_users.Length);
        var hasSession = client.Sessions.ContainsKey(user);
        var roll = random.Next(100);
        VaultInput input = roll switch
        {
            < 35 when hasSession => new VaultInput.FinishRecovery(CorrectPassword: random.Next(3) == 0),
            < 55 => new VaultInput.StartRecovery(),
            < 70 => new VaultInput.Register(Limit: 1 + random.Next(4), Replace: random.Next(3) == 0),
            < 90 => new VaultInput.Status(),
            _ => new VaultInput.Delete(),
        };
        var op = new ClientOperation(client, user, input, _history.Invoke(client.Id, _users[user].ToString(), input), target);
        client.Current = op;
        _simulation.Log($"client {client.Id} at {target.Id}: {input} for {_users[user]}");
        switch (input)
        {
            case VaultInput.FinishRecovery finish:
                // The session is taken whatever happens next, as RecoverySessions.Take does.
                client.Sessions.Remove(user, out var session);
                op.Command = finish.CorrectPassword
                    ? new ResetGuessesCommand(_users[user], session.Version, session.AttemptSerial)
                    : new DestroyIfExhaustedCommand(_users[user], session.Version);
                Propose(op);
                break;
            default:
                StartRead(op);
                break;
        }
    }

    /// <summary>The service's read barrier (ReadIndex) before a read or a read-then-propose.</summary>
    private void StartRead(ClientOperation op)
    {
        var member = op.Member;
        if (Routed)
        {
            StartRoutedRead(op);
            return;
        }

        var id = _simulation.NextRequestId();
        if (member.Node?.ReadIndex(id) != true)
        {
            End(op, Ending.NoEffect);
            return;
        }

        op.AttemptEnds = _simulation.Now + AttemptTicks;
        At(member).Reads[id] = op;
        _simulation.Drain(member);
    }

    private void Propose(ClientOperation op)
    {
        var member = op.Member;
        if (Routed)
        {
            StartRoutedProposal(op);
            return;
        }

        // Signed by the serving member, as its token signs what it decides; every member verifies at apply.
        if (member.Node?.Propose(_fleet.Sign(op.Command!, member.Id)) is not { } ticket)
        {
            End(op, Ending.NoEffect);
            return;
        }

        op.Proposed = true;
        op.AttemptEnds = _simulation.Now + AttemptTicks;
        At(member).Proposals[ticket.Index] = (ticket.Term, op);
        _simulation.Proposed(member);
    }

    /// <summary>The service's read barrier through the serving member's router, then the read on that member's state.</summary>
    private void StartRoutedRead(ClientOperation op)
    {
        if (op.Member.Raft is not { } raft)
        {
            End(op, Ending.NoEffect);
            return;
        }

        op.AttemptEnds = long.MaxValue; // the router's own deadline ends it, as the service's call does
        _simulation.StartClientCall(async () =>
        {
            try
            {
                await raft.Router.ReadBarrierAsync(CancellationToken.None);
            }
            catch (Exception e) when (e is QuorumUnavailableException or OperationCanceledException)
            {
                if (op.Client.Current == op)
                {
                    End(op, Ending.NoEffect);
                }

                return;
            }

            if (op.Client.Current == op && !raft.Crashed)
            {
                Read(op, (ProductionVaultState)op.Member.StateMachine);
            }
        });
    }

    /// <summary>The command, signed by the serving member, committed through its router (forwarded when it follows).</summary>
    private void StartRoutedProposal(ClientOperation op)
    {
        if (op.Member.Raft is not { } raft)
        {
            End(op, Ending.NoEffect);
            return;
        }

        var command = _fleet.Sign(op.Command!, op.Member.Id);
        op.Proposed = true;
        op.AttemptEnds = long.MaxValue; // the router's own deadline ends it, as the service's call does
        _simulation.StartClientCall(async () =>
        {
            byte[] result;
            try
            {
                result = await raft.Router.SubmitAsync(command, CancellationToken.None);
            }
            catch (Exception e) when (e is OutcomeUnknownException or OperationCanceledException or QuorumUnavailableException)
            {
                if (op.Client.Current == op)
                {
                    // The router refuses with QuorumUnavailable only when it proposed nothing.
                    End(op, e is QuorumUnavailableException ? Ending.NoEffect : Ending.Unknown);
                }

                return;
            }

            if (op.Client.Current == op)
            {
                Answered(op, VaultCommandCodec.DecodeResult(result));
            }
        });
    }

    /// <summary>What the serving member does with its state once the barrier is passed.</summary>
    private void Read(ClientOperation op, ProductionVaultState state)
    {
        var user = _users[op.User];
        var record = state.Read(user);
        switch (op.Input)
        {
            case VaultInput.Status:
                Return(op, record?.State switch
                {
                    RecordState.Live => new VaultOutput.Status(true, record.GuessesRemaining, false),
                    RecordState.Destroyed => new VaultOutput.Status(false, 0, true),
                    _ => new VaultOutput.Status(false, 0, false),
                });
                break;
            case VaultInput.Delete:
                if (record?.State != RecordState.Live)
                {
                    Return(op, new VaultOutput.NotFound());
                    break;
                }

                op.Command = new DeleteCommand(user, record.Version);
                _toPropose.Add(op);
                break;
            case VaultInput.Register register:
                if (record?.State == RecordState.Live && !register.Replace)
                {
                    Return(op, new VaultOutput.AlreadyRegistered());
                    break;
                }

                op.Command = new RegisterCommand(user, record?.Version ?? 0, register.Limit, SealedBlob, register.Replace, NewTicketNonce());
                _toPropose.Add(op);
                break;
            case VaultInput.StartRecovery:
                switch (record?.State)
                {
                    case null or RecordState.Deleted:
                        // The service answers a fake KE2 and charges nothing.
                        Return(op, new VaultOutput.NotRegistered());
                        break;
                    case RecordState.Destroyed:
                        Return(op, new VaultOutput.Destroyed());
                        break;
                    default:
                        op.Command = new ChargeGuessCommand(user, record.Version, record.AttemptSerial, new byte[VaultCommandCodec.AttemptIdBytes]);
                        _toPropose.Add(op);
                        break;
                }

                break;
            default:
                throw new InvalidOperationException($"{op.Input} does not read.");
        }
    }

    /// <summary>How the service turns what apply answered into the client's answer.</summary>
    private void Answered(ClientOperation op, CommandResult result)
    {
        op.Proposed = false;
        VaultOutput output;
        switch (op.Command, result.Outcome)
        {
            case (_, CommandOutcome.VersionConflict) when op.Input is VaultInput.Register or VaultInput.StartRecovery:
                // Nothing changed; the service reads again and retries, then gives up with an error.
                if (++op.Conflicts <= MaxVersionConflictRetries)
                {
                    _toRead.Add(op);
                }
                else
                {
                    End(op, Ending.NoEffect);
                }

                return;
            case (RegisterCommand, CommandOutcome.Registered or CommandOutcome.Replaced):
                output = new VaultOutput.Registered();
                break;
            case (RegisterCommand, CommandOutcome.AlreadyRegistered):
                output = new VaultOutput.AlreadyRegistered();
                break;
            case (ChargeGuessCommand charge, CommandOutcome.Charged):
                op.Client.Sessions[op.User] = (charge.Version, result.AttemptSerial);
                output = new VaultOutput.Charged(result.GuessesRemaining);
                break;
            case (ChargeGuessCommand, CommandOutcome.NotRegistered):
                output = new VaultOutput.NotRegistered();
                break;
            case (ResetGuessesCommand, CommandOutcome.Reset):
                output = new VaultOutput.Success();
                break;
            case (ResetGuessesCommand, CommandOutcome.Unchanged):
                // A later attempt's reset came first: the client is told Success (its password was
                // proven) but the count does not move, since guesses charged after that later reset
                // stay charged. The model knows no attempts, so the operation, which changed
                // nothing, leaves the history.
                End(op, Ending.NoEffect);
                return;
            case (ChargeGuessCommand or DeleteCommand or RegisterCommand, CommandOutcome.VersionConflict):
                // Decided on a state that moved on: nothing happened (the service retries or answers Aborted).
                End(op, Ending.NoEffect);
                return;
            case (DestroyIfExhaustedCommand, CommandOutcome.Unchanged):
                output = new VaultOutput.WrongPassword(result.GuessesRemaining);
                break;
            case (ChargeGuessCommand or ResetGuessesCommand or DestroyIfExhaustedCommand, CommandOutcome.Destroyed):
                output = new VaultOutput.Destroyed();
                break;
            case (ResetGuessesCommand or DestroyIfExhaustedCommand, CommandOutcome.NotRegistered or CommandOutcome.VersionConflict):
                // The record was deleted or replaced since the session began: FailedPrecondition, nothing changed.
                output = new VaultOutput.SessionInvalid();
                break;
            case (DeleteCommand, CommandOutcome.Deleted):
                output = new VaultOutput.Deleted();
                break;
            case (DeleteCommand, CommandOutcome.NotRegistered):
                output = new VaultOutput.NotFound();
                break;
            default:
                throw new InvalidOperationException(
                    string.Create(CultureInfo.InvariantCulture, $"{op.Command} was answered {result}, which the service never expects."));
        }

        Return(op, output);
    }

    /// <summary>A registration ticket's nonce, distinct for every registration (as StartRegistration makes them).</summary>
    private byte[] NewTicketNonce()
    {
        var nonce = new byte[UserIdentity.RegistrationNonceBytes];
        System.Buffers.Binary.BinaryPrimitives.WriteInt64BigEndian(nonce, ++_ticketNonces);
        return nonce;
    }

    private void Return(ClientOperation op, VaultOutput output)
    {
        _simulation.Log($"client {op.Client.Id}: {op.Input} -> {output}");
        op.Recorded.Return(output);
        Done(op);
    }

    private enum Ending
    {
        /// <summary>Nothing the operation proposed can take effect: drop it from the history.</summary>
        NoEffect,

        /// <summary>A proposal may still commit, or may not: the operation stays pending.</summary>
        Unknown,
    }

    private void End(ClientOperation op, Ending ending)
    {
        _simulation.Log($"client {op.Client.Id}: {op.Input} ended, {(ending == Ending.Unknown ? "outcome unknown" : "no effect")}");
        if (ending == Ending.Unknown)
        {
            op.Recorded.Fail();
        }
        else
        {
            op.Recorded.Discard();
        }

        Done(op);
    }

    private void Done(ClientOperation op)
    {
        op.Client.Current = null;
        if (_inFlight.TryGetValue(op.Member, out var inFlight))
        {
            foreach (var index in inFlight.Proposals.Where(p => p.Value.Operation == op).Select(p => p.Key).ToList())
            {
                inFlight.Proposals.Remove(index);
            }

            foreach (var id in inFlight.Reads.Where(r => r.Value == op).Select(r => r.Key).ToList())
            {
                inFlight.Reads.Remove(id);
            }

        }

        _toPropose.Remove(op);
        _toRead.Remove(op);
    }

    private void GiveUpOnLateAttempts()
    {
        foreach (var client in _clients)
        {
            if (client.Current is { } op && op.AttemptEnds <= _simulation.Now && !_toPropose.Contains(op) && !_toRead.Contains(op))
            {
                End(op, op.Proposed ? Ending.Unknown : Ending.NoEffect);
            }
        }
    }

    private sealed class Client(int id)
    {
        public int Id { get; } = id;

        public SimMember? Leader { get; set; }

        public ClientOperation? Current { get; set; }

        /// <summary>Recovery sessions this client started, by user: the record version they were charged against.</summary>
        public Dictionary<int, (long Version, long AttemptSerial)> Sessions { get; } = [];
    }

    private sealed class ClientOperation(Client client, int user, VaultInput input, RecordedOperation<VaultInput, VaultOutput> recorded, SimMember member)
    {
        public Client Client { get; } = client;

        public int User { get; } = user;

        public VaultInput Input { get; } = input;

        public RecordedOperation<VaultInput, VaultOutput> Recorded { get; } = recorded;

        /// <summary>The serving member: the leader the client reached, or when routed any member.</summary>
        public SimMember Member { get; } = member;

        public VaultCommand? Command { get; set; }

        /// <summary>Whether a proposal of this operation is in flight with an unknown fate.</summary>
        public bool Proposed { get; set; }

        public int Conflicts { get; set; }

        public long AttemptEnds { get; set; } = long.MaxValue;
    }

    private sealed class InFlight
    {
        public Dictionary<ulong, (ulong Term, ClientOperation Operation)> Proposals { get; } = [];

        public Dictionary<ulong, ClientOperation> Reads { get; } = [];

    }
}
