using HsmVault.Consensus.Internal;

namespace HsmVault.Consensus;

/// <summary>
/// The Raft consensus core of one member, in etcd-raft's design: pure and deterministic, driven by
/// <see cref="Step"/>, <see cref="Tick"/>, <see cref="Propose"/> and <see cref="ReadIndex"/>; it performs
/// no I/O. Its output is a <see cref="Ready"/> batch (<see cref="HasReady"/>, <see cref="GetReady"/>) that the
/// host persists, sends and applies before calling <see cref="Advance"/>. Not thread-safe: one owner drives it,
/// and no other call may come between <see cref="GetReady"/> and <see cref="Advance"/>.
/// </summary>
/// <remarks>
/// Implements leader election with pre-vote and check-quorum (thesis §9.6, §6.2), log replication with
/// fast backtracking (thesis §5.3 / "accelerated log backtracking"), the commit rule of Raft §5.4.2,
/// snapshots (Raft §7), ReadIndex (thesis §6.4) and a rollback guard (see <see cref="IsBehindHighWaterMark"/>).
/// </remarks>
public sealed class RaftNode
{
    private readonly string _id;
    private readonly string[] _members;
    private readonly string[] _peers;
    private readonly HashSet<string> _memberSet;
    private readonly int _quorum;
    private readonly int _electionTicks;
    private readonly int _heartbeatTicks;
    private readonly int _maxEntries;
    private readonly Random _random;
    private readonly RaftLog _log;
    private readonly Dictionary<string, Progress> _progress = new(StringComparer.Ordinal);
    private readonly Dictionary<string, bool> _votes = new(StringComparer.Ordinal);
    private readonly List<RaftMessage> _outbox = [];
    private readonly List<ReadState> _readStates = [];
    private readonly List<ulong> _droppedReads = [];
    private readonly List<PendingRead> _pendingReads = [];
    private readonly List<ulong> _readsAwaitingCommit = [];

    private ulong _term;
    private string? _vote;
    private ulong _commit;
    private ulong _applied;
    private RaftRole _role;
    private string? _leaderId;
    private int _electionElapsed;
    private int _heartbeatElapsed;
    private int _randomizedElectionTimeout;
    private ulong _readSequence;

    // Persistence bookkeeping: what the host has made durable so far.
    private HardState _persistedHardState;
    private ulong _stableIndex;
    private RaftSnapshot? _snapshot;
    private RaftSnapshot? _pendingSnapshot;
    private HighWaterMark _mark;
    private LogPosition _vouched;
    private bool _readyInFlight;
    private ulong _readyLastEntry;
    private ulong _readyLastApplied;

    /// <summary>Creates a node from what its storage recovered.</summary>
    /// <param name="options">Identity, membership, timing and randomness.</param>
    /// <param name="state">Durable state from <see cref="IRaftStorage.Load"/>.</param>
    /// <param name="highWaterMark">The rollback guard's mark, or null for a member that has never spoken.</param>
    /// <param name="appliedIndex">Index up to which the application state already includes the log (it persists this itself).</param>
    public RaftNode(RaftNodeOptions options, RaftPersistentState state, HighWaterMark? highWaterMark, ulong appliedIndex)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(state);
        if (options.ElectionTicks <= options.HeartbeatTicks || options.HeartbeatTicks < 1)
        {
            throw new ArgumentException("ElectionTicks must exceed HeartbeatTicks, which must be at least 1.", nameof(options));
        }

        _id = options.Id;
        _members = [.. options.Members.Distinct(StringComparer.Ordinal)];
        if (!_members.Contains(_id, StringComparer.Ordinal))
        {
            throw new ArgumentException($"Member id '{_id}' is not in the member list.", nameof(options));
        }

        _memberSet = new HashSet<string>(_members, StringComparer.Ordinal);
        _peers = [.. _members.Where(m => m != _id)];
        _quorum = (_members.Length / 2) + 1;
        _electionTicks = options.ElectionTicks;
        _heartbeatTicks = options.HeartbeatTicks;
        _maxEntries = Math.Max(1, options.MaxEntriesPerMessage);
        _random = options.Random;

        _snapshot = state.Snapshot;
        _log = new RaftLog(state.Snapshot?.Index ?? 0, state.Snapshot?.Term ?? 0);
        foreach (var entry in state.Entries)
        {
            if (entry.Index > _log.SnapshotIndex)
            {
                _log.Append(entry);
            }
        }

        _stableIndex = _log.LastIndex;
        _term = state.HardState.Term;
        _vote = state.HardState.Vote;
        _commit = Math.Clamp(state.HardState.Commit, _log.SnapshotIndex, _log.LastIndex);
        _applied = Math.Clamp(appliedIndex, _log.SnapshotIndex, _log.LastIndex);

        // The application only ever applies committed entries, so its applied index is a commit index too.
        _commit = Math.Max(_commit, _applied);
        _persistedHardState = state.HardState;

        _mark = highWaterMark ?? new HighWaterMark(0, null, 0, 0);
        RestoreFromHighWaterMark();
        _vouched = new LogPosition(_mark.IndexTerm, _mark.Index);
        BecomeFollower(_term, null);
    }

    /// <summary>This member's id.</summary>
    public string Id => _id;

    /// <summary>Current role.</summary>
    public RaftRole Role => _role;

    /// <summary>Current term.</summary>
    public ulong Term => _term;

    /// <summary>The leader of the current term, when known.</summary>
    public string? LeaderId => _leaderId;

    /// <summary>Highest index known committed.</summary>
    public ulong CommitIndex => _commit;

    /// <summary>Highest index handed to the application (through a Ready that was advanced).</summary>
    public ulong AppliedIndex => _applied;

    /// <summary>Index of the last log entry.</summary>
    public ulong LastIndex => _log.LastIndex;

    /// <summary>Index covered by the latest snapshot.</summary>
    public ulong SnapshotIndex => _log.SnapshotIndex;

    /// <summary>Size of the latest snapshot's data (0 before the first), which the pipeline's snapshot policy weighs.</summary>
    public long SnapshotBytes => _snapshot?.Data.Length ?? 0;

    /// <summary>The applied entries the log holds after the latest snapshot: what the next snapshot would let go.</summary>
    public IReadOnlyList<LogEntry> AppliedSinceSnapshot() => _log.Slice(_log.SnapshotIndex + 1, Math.Min(_applied, _log.LastIndex));

    /// <summary>The fleet's members.</summary>
    public IReadOnlyList<string> Members => _members;

    /// <summary>
    /// True while the log is behind the highest position this member has vouched for (its disk was rolled
    /// back or wiped). See <see cref="RestoreFromHighWaterMark"/> for what the member may still do.
    /// </summary>
    public bool IsBehindHighWaterMark => LastPosition < _vouched;

    /// <summary>True when the rollback guard found the disk behind the mark at start.</summary>
    public bool RollbackDetected { get; private set; }

    private LogPosition LastPosition => new(_log.LastTerm, _log.LastIndex);

    /// <summary>A point-in-time view for health checks.</summary>
    public RaftStatus GetStatus() => new(
        _id, _role, _term, _leaderId, _commit, _applied, _log.LastIndex, _log.SnapshotIndex, IsBehindHighWaterMark);

    /// <summary>The term of the entry at <paramref name="index"/> if the log (or its snapshot) still knows it.</summary>
    public ulong? TryGetTerm(ulong index) => _log.TryGetTerm(index, out var term) ? term : null;

    /// <summary>Advances logical time by one tick: election timeouts, heartbeats and check-quorum.</summary>
    public void Tick()
    {
        if (_role == RaftRole.Leader)
        {
            TickLeader();
        }
        else
        {
            TickElection();
        }
    }

    /// <summary>
    /// Appends <paramref name="command"/> to the log if this member leads; returns where it will commit,
    /// or null when this member is not the leader (the caller forwards to <see cref="LeaderId"/>).
    /// </summary>
    public ProposalTicket? Propose(ReadOnlyMemory<byte> command)
    {
        if (_role != RaftRole.Leader)
        {
            return null;
        }

        var entry = new LogEntry(_log.LastIndex + 1, _term, LogEntryKind.Command, command);
        _log.Append(entry);
        foreach (var peer in _peers)
        {
            SendAppend(peer, allowEmpty: false);
        }

        return new ProposalTicket(entry.Index, entry.Term);
    }

    /// <summary>
    /// Starts a ReadIndex request (thesis §6.4): once a quorum confirms this member still leads, a
    /// <see cref="ReadState"/> with the commit index at the time of the call appears in a Ready; a read
    /// served after applying up to that index is linearizable. Returns false when this member is not leader.
    /// A new leader answers only after its no-op commits, because before that its commit index may be stale.
    /// </summary>
    public bool ReadIndex(ulong requestId)
    {
        if (_role != RaftRole.Leader)
        {
            return false;
        }

        if (!CommittedInCurrentTerm())
        {
            _readsAwaitingCommit.Add(requestId);
            return true;
        }

        StartReadRound([requestId]);
        return true;
    }

    /// <summary>Handles one message from another member. Malformed, misaddressed and stale messages change nothing.</summary>
    public void Step(RaftMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (message.To != _id || message.From == _id || !_memberSet.Contains(message.From))
        {
            return;
        }

        if (message.Term > _term)
        {
            if (message is PreVoteRequest or VoteRequest && InLease())
            {
                // Thesis §4.2.3 / §9.6: a member that heard from a live leader within the minimum election
                // timeout ignores (pre-)vote requests, so a rejoining or partitioned member cannot depose it.
                return;
            }

            if (message is PreVoteRequest || message is PreVoteResponse { Granted: true })
            {
                // A pre-vote request and a granted pre-vote carry a term nobody has entered yet; they must not
                // change ours (thesis §9.6).
            }
            else
            {
                var leader = message is AppendEntriesRequest or InstallSnapshotRequest ? message.From : null;
                BecomeFollower(message.Term, leader);
            }
        }
        else if (message.Term < _term)
        {
            if (message is AppendEntriesRequest or InstallSnapshotRequest)
            {
                // Tell a stale leader about the newer term, so it steps down; with pre-vote it may otherwise
                // never learn of it (etcd-raft does the same).
                Send(new AppendEntriesResponse(_id, message.From, _term, false, 0, 0, 0, 0, 0));
            }
            else if (message is PreVoteRequest)
            {
                Send(new PreVoteResponse(_id, message.From, _term, false));
            }

            return;
        }

        switch (message)
        {
            case PreVoteRequest m:
                HandleVoteRequest(m.From, m.Term, m.LastLogTerm, m.LastLogIndex, preVote: true);
                break;
            case VoteRequest m:
                HandleVoteRequest(m.From, m.Term, m.LastLogTerm, m.LastLogIndex, preVote: false);
                break;
            case PreVoteResponse m:
                // A grant carries the term we would campaign in; a refusal carries the responder's (ours).
                if (_role == RaftRole.PreCandidate && ((m.Granted && m.Term == _term + 1) || (!m.Granted && m.Term == _term)))
                {
                    HandleVoteResponse(m.From, m.Granted, preVote: true);
                }

                break;
            case VoteResponse m:
                if (_role == RaftRole.Candidate && m.Term == _term)
                {
                    HandleVoteResponse(m.From, m.Granted, preVote: false);
                }

                break;
            case AppendEntriesRequest m:
                if (AcceptLeader(m.From))
                {
                    HandleAppend(m);
                }

                break;
            case InstallSnapshotRequest m:
                if (AcceptLeader(m.From))
                {
                    HandleSnapshot(m);
                }

                break;
            case AppendEntriesResponse m:
                if (_role == RaftRole.Leader)
                {
                    HandleAppendResponse(m);
                }

                break;
        }
    }

    /// <summary>True when there is something to persist, send, apply or report.</summary>
    public bool HasReady()
    {
        return _outbox.Count > 0
            || _readStates.Count > 0
            || _droppedReads.Count > 0
            || _pendingSnapshot is not null
            || _log.LastIndex > _stableIndex
            || _commit > _applied
            || CurrentHardState() != _persistedHardState;
    }

    /// <summary>Collects the pending work. Call <see cref="Advance"/> when it is done.</summary>
    public Ready GetReady()
    {
        if (_readyInFlight)
        {
            throw new InvalidOperationException("The previous Ready has not been advanced.");
        }

        var hardState = CurrentHardState();
        var entries = _log.LastIndex > _stableIndex ? _log.Slice(_stableIndex + 1, _log.LastIndex) : [];

        // A leader counts its own log towards the commit quorum once it is durable (in Advance); that is a
        // vouch like an acknowledgement, so the mark must cover it first.
        if (_role == RaftRole.Leader && entries.Count > 0)
        {
            Vouch(new LogPosition(entries[^1].Term, entries[^1].Index));
        }

        var mark = new HighWaterMark(_term, _vote, _vouched.Index, _vouched.Term);
        var firstToApply = Math.Max(_applied, _pendingSnapshot?.Index ?? 0) + 1;
        var committed = _commit >= firstToApply ? _log.Slice(firstToApply, _commit) : [];

        var termOrVoteChanged = hardState.Term != _persistedHardState.Term || hardState.Vote != _persistedHardState.Vote;
        List<RaftMessage> early = [];
        List<RaftMessage> late = [];
        foreach (var message in _outbox)
        {
            // Thesis §10.2.1: a leader may replicate entries before they are on its own disk. Only its appends
            // and snapshots qualify, and only while its term and vote are already durable.
            var replication = message is AppendEntriesRequest or InstallSnapshotRequest;
            (_role == RaftRole.Leader && !termOrVoteChanged && replication ? early : late).Add(message);
        }

        var ready = new Ready(
            hardState != _persistedHardState ? hardState : null,
            _pendingSnapshot,
            entries,
            mark != _mark ? mark : null,
            early,
            late,
            committed,
            [.. _readStates],
            [.. _droppedReads],
            mustSync: termOrVoteChanged || _pendingSnapshot is not null || entries.Count > 0);
        _outbox.Clear();
        _readStates.Clear();
        _droppedReads.Clear();
        _readyInFlight = true;
        _readyLastEntry = entries.Count > 0 ? entries[^1].Index : 0;
        _readyLastApplied = committed.Count > 0 ? committed[^1].Index : 0;
        return ready;
    }

    /// <summary>Tells the node that the last <see cref="Ready"/> is durable, sent and applied.</summary>
    public void Advance()
    {
        if (!_readyInFlight)
        {
            throw new InvalidOperationException("No Ready to advance.");
        }

        _readyInFlight = false;
        _persistedHardState = CurrentHardState();
        _mark = new HighWaterMark(_term, _vote, _vouched.Index, _vouched.Term);
        if (_pendingSnapshot is not null)
        {
            _applied = Math.Max(_applied, _pendingSnapshot.Index);
            _pendingSnapshot = null;
        }

        if (_readyLastEntry > 0)
        {
            _stableIndex = Math.Max(_stableIndex, _readyLastEntry);
        }

        if (_readyLastApplied > 0)
        {
            _applied = Math.Max(_applied, _readyLastApplied);
        }

        if (_role == RaftRole.Leader)
        {
            // Raft §10.2.1 (thesis): the leader counts itself only for what is on its own disk.
            var self = _progress[_id];
            if (_stableIndex > self.Match)
            {
                self.Match = _stableIndex;
                self.Next = _stableIndex + 1;
                MaybeCommit();
            }
        }
    }

    /// <summary>
    /// Compacts the log up to <paramref name="snapshot"/>, which the host has already made durable, and sends that
    /// snapshot to followers from now on. The snapshot must not go beyond the applied index.
    /// </summary>
    public void Compact(RaftSnapshot snapshot)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        if (_readyInFlight)
        {
            throw new InvalidOperationException("Compact between GetReady and Advance.");
        }

        if (snapshot.Index < _log.SnapshotIndex)
        {
            return;
        }

        if (snapshot.Index == _log.SnapshotIndex)
        {
            // The durable copy of the snapshot the log already starts at (one installed from the leader): send that one.
            if (snapshot.Term == _log.SnapshotTerm)
            {
                _snapshot = snapshot;
            }

            return;
        }

        if (snapshot.Index > _applied || !_log.TryGetTerm(snapshot.Index, out var term) || term != snapshot.Term)
        {
            throw new ArgumentException(
                $"Snapshot ({snapshot.Index}, {snapshot.Term}) does not match the applied log (applied {_applied}).", nameof(snapshot));
        }

        _log.CompactTo(snapshot.Index, snapshot.Term);
        _snapshot = snapshot;
    }

    private HardState CurrentHardState() => new(_term, _vote, _commit);

    /// <summary>
    /// The rollback guard (DESIGN.md, "Disk rollback breaks plain Raft").
    /// <para>
    /// The mark records the member's term and vote, and the highest log position (term, index) it has
    /// <em>vouched for</em>: acknowledged to a leader, or counted towards a quorum as leader. Every Ready that
    /// raises any of these carries a new mark, which the host writes after the fsync and before sending
    /// anything, so the mark is never behind what the rest of the fleet has been told.
    /// </para>
    /// <para>
    /// On start, if the disk is behind the mark: (1) term and vote are taken from the mark, so the member
    /// cannot vote twice in a term; (2) while its log ends before the vouched position it does not campaign,
    /// and it grants (pre-)votes only to candidates whose log is at least as up to date as the vouched
    /// position — the position it <em>had</em> when it acknowledged, which is what the election restriction
    /// of Raft §5.4.1 relies on. A candidate at or past that position holds every entry this member helped
    /// commit (same term: same leader's prefix; later term: Leader Completeness), so quorum intersection
    /// holds as if the disk had never gone back. (3) It may still accept appends and snapshots and
    /// acknowledge them: an acknowledgement states what its log holds now, which is true, and a leader's
    /// stale matchIndex for it can never exceed the vouched position. Once its log reaches the vouched
    /// position it is caught up and behaves normally.
    /// </para>
    /// <para>
    /// This is more permissive than "refuse all votes and acknowledgements until caught up" but equally safe,
    /// and it keeps a fleet of three live when one member is rolled back and another is down.
    /// </para>
    /// <para>
    /// Why the mark is exact and not vouched ahead (one token write per window of N entries, the index rounded
    /// up): rule (2) would still be safe with such a bound, since it is at least every position vouched for.
    /// But a crash without any rollback then leaves the log below the bound, which the member cannot tell from
    /// a rollback: it stops campaigning and grants votes only to logs that reach the bound. When no log in the
    /// fleet reaches it (a fleet of one after any crash; members that crashed within one window; a follower
    /// restarted in a window whose leader then dies), no leader is ever elected again, because only the leader
    /// of that term could have written those entries and a term is never led twice. The simulator shows it
    /// (<c>Simulation_MarkVouchedAheadInWindows_StaysSafeButStallsAfterCrashes</c>: most seeds stall, none
    /// is unsafe). Safe escapes need evidence the member cannot get on its own — e.g. the leader's last index
    /// in AppendEntries, so that a follower holding all of that leader's log can drop its bound — so the mark
    /// stays exact, written once per Ready (a batch, which grows with load), and only when it changes.
    /// </para>
    /// </summary>
    private void RestoreFromHighWaterMark()
    {
        if (_mark.Term > _term)
        {
            _term = _mark.Term;
            _vote = _mark.Vote;
            RollbackDetected = true;
        }
        else if (_mark.Term == _term && _mark.Vote is not null && _vote != _mark.Vote)
        {
            _vote = _mark.Vote;
            RollbackDetected = true;
        }

        if (LastPosition < new LogPosition(_mark.IndexTerm, _mark.Index))
        {
            RollbackDetected = true;
        }
    }

    /// <summary>Records that this member is about to vouch for holding the log up to <paramref name="position"/>.</summary>
    private void Vouch(LogPosition position)
    {
        if (position > _vouched)
        {
            _vouched = position;
        }
    }

    /// <summary>
    /// The election restriction (Raft §5.4.1): grant only to a candidate whose last entry is at least as up to
    /// date as ours — or as the position we have vouched for, if our disk lost it (see <see cref="RestoreFromHighWaterMark"/>).
    /// </summary>
    private bool IsUpToDate(ulong lastTerm, ulong lastIndex)
    {
        var floor = LastPosition > _vouched ? LastPosition : _vouched;
        return new LogPosition(lastTerm, lastIndex) >= floor;
    }

    private bool InLease() => _leaderId is not null && _electionElapsed < _electionTicks;

    private bool Promotable() => !IsBehindHighWaterMark;

    private bool CommittedInCurrentTerm() => _log.TryGetTerm(_commit, out var term) && term == _term;

    private void Send(RaftMessage message) => _outbox.Add(message);

    private void ResetElectionTimer()
    {
        _electionElapsed = 0;
        _heartbeatElapsed = 0;
        _randomizedElectionTimeout = _electionTicks + _random.Next(_electionTicks);
    }

    private void BecomeFollower(ulong term, string? leader)
    {
        if (term != _term)
        {
            _term = term;
            _vote = null;
        }

        if (_role == RaftRole.Leader)
        {
            DropPendingReads();
        }

        _role = RaftRole.Follower;
        _leaderId = leader;
        _votes.Clear();
        ResetElectionTimer();
    }

    private void DropPendingReads()
    {
        _droppedReads.AddRange(_readsAwaitingCommit);
        _droppedReads.AddRange(_pendingReads.Select(r => r.RequestId));
        _readsAwaitingCommit.Clear();
        _pendingReads.Clear();
    }

    private bool AcceptLeader(string from)
    {
        if (_role == RaftRole.Leader)
        {
            // Two leaders in one term cannot happen (Election Safety, Raft §5.2); ignore rather than trust it.
            return false;
        }

        if (_role != RaftRole.Follower)
        {
            BecomeFollower(_term, from);
        }

        _leaderId = from;
        _electionElapsed = 0;
        return true;
    }

    private void TickElection()
    {
        _electionElapsed++;
        if (_electionElapsed >= _randomizedElectionTimeout)
        {
            _electionElapsed = 0;
            if (Promotable())
            {
                Campaign(preVote: true);
            }
            else
            {
                ResetElectionTimer();
            }
        }
    }

    private void TickLeader()
    {
        _heartbeatElapsed++;
        _electionElapsed++;
        if (_electionElapsed >= _electionTicks)
        {
            _electionElapsed = 0;

            // Check-quorum (thesis §6.2): a leader that has not heard from a majority within an election
            // timeout steps down, so a partitioned leader stops serving reads and accepting proposals.
            var active = 1 + _peers.Count(p => _progress[p].RecentActive);
            if (active < _quorum)
            {
                BecomeFollower(_term, null);
                return;
            }

            foreach (var peer in _peers)
            {
                _progress[peer].RecentActive = false;
            }
        }

        if (_heartbeatElapsed >= _heartbeatTicks)
        {
            _heartbeatElapsed = 0;
            foreach (var peer in _peers)
            {
                HeartbeatTick(peer);
            }
        }
    }

    private void Campaign(bool preVote)
    {
        ulong term;
        if (preVote)
        {
            _role = RaftRole.PreCandidate;
            _leaderId = null;
            _votes.Clear();
            ResetElectionTimer();
            term = _term + 1;
        }
        else
        {
            BecomeFollower(_term + 1, null);
            _role = RaftRole.Candidate;
            _vote = _id;
            term = _term;
        }

        _votes[_id] = true;
        if (_votes.Count(v => v.Value) >= _quorum)
        {
            if (preVote)
            {
                Campaign(preVote: false);
            }
            else
            {
                BecomeLeader();
            }

            return;
        }

        foreach (var peer in _peers)
        {
            Send(preVote
                ? new PreVoteRequest(_id, peer, term, _log.LastIndex, _log.LastTerm)
                : new VoteRequest(_id, peer, term, _log.LastIndex, _log.LastTerm));
        }
    }

    private void HandleVoteRequest(string from, ulong term, ulong lastTerm, ulong lastIndex, bool preVote)
    {
        // etcd-raft's canVote: repeat a vote already cast, vote if we have not voted and know no leader, or,
        // for a pre-vote, answer about a future term regardless of our current vote.
        var canVote = _vote == from
            || (_vote is null && _leaderId is null)
            || (preVote && term > _term);
        if (canVote && IsUpToDate(lastTerm, lastIndex))
        {
            if (preVote)
            {
                Send(new PreVoteResponse(_id, from, term, true));
            }
            else
            {
                _vote = from;
                _electionElapsed = 0;
                Send(new VoteResponse(_id, from, term, true));
            }
        }
        else
        {
            Send(preVote ? new PreVoteResponse(_id, from, _term, false) : new VoteResponse(_id, from, _term, false));
        }
    }

    private void HandleVoteResponse(string from, bool granted, bool preVote)
    {
        _votes.TryAdd(from, granted);
        var grants = _votes.Count(v => v.Value);
        var refusals = _votes.Count - grants;
        if (grants >= _quorum)
        {
            if (preVote)
            {
                Campaign(preVote: false);
            }
            else
            {
                BecomeLeader();
            }
        }
        else if (refusals >= _quorum)
        {
            BecomeFollower(_term, null);
        }
    }

    private void BecomeLeader()
    {
        _role = RaftRole.Leader;
        _leaderId = _id;
        _votes.Clear();
        ResetElectionTimer();
        _pendingReads.Clear();
        _readsAwaitingCommit.Clear();
        _progress.Clear();
        foreach (var member in _members)
        {
            _progress[member] = new Progress { Next = _log.LastIndex + 1, RecentActive = true };
        }

        var self = _progress[_id];
        self.Match = _stableIndex;
        self.State = ProgressState.Replicate;

        // Raft §8 / thesis §6.4: commit an entry of our own term at once, so earlier entries commit (§5.4.2)
        // and ReadIndex can trust the commit index.
        _log.Append(new LogEntry(_log.LastIndex + 1, _term, LogEntryKind.NoOp, ReadOnlyMemory<byte>.Empty));
        foreach (var peer in _peers)
        {
            SendAppend(peer, allowEmpty: true);
        }
    }

    private void HandleAppend(AppendEntriesRequest m)
    {
        if (!WellFormed(m))
        {
            return;
        }

        ulong prev = m.PrevLogIndex;
        if (prev >= _commit)
        {
            // The consistency check (Raft §5.3).
            if (!_log.TryGetTerm(prev, out var prevTerm) || prevTerm != m.PrevLogTerm)
            {
                RejectAppend(m);
                return;
            }
        }

        // Entries up to our commit index are committed, and committed prefixes are identical on every
        // member (Log Matching + Leader Completeness, §5.4.3): they need no check and are never truncated.
        foreach (var entry in m.Entries)
        {
            if (entry.Index <= _commit)
            {
                continue;
            }

            if (entry.Index <= _log.LastIndex)
            {
                if (_log.Term(entry.Index) == entry.Term)
                {
                    continue;
                }

                _log.TruncateFrom(entry.Index);
                _stableIndex = Math.Min(_stableIndex, entry.Index - 1);
            }

            _log.Append(entry);
        }

        var lastNew = prev + (ulong)m.Entries.Count;
        var match = Math.Max(lastNew, _commit);
        CommitTo(Math.Min(m.LeaderCommit, lastNew));
        Vouch(new LogPosition(_log.Term(match), match));
        Send(new AppendEntriesResponse(_id, m.From, _term, true, match, 0, 0, 0, m.ReadSequence));
    }

    private static bool WellFormed(AppendEntriesRequest m)
    {
        for (var i = 0; i < m.Entries.Count; i++)
        {
            var entry = m.Entries[i];
            if (entry.Index != m.PrevLogIndex + 1 + (ulong)i || entry.Term > m.Term
                || (i > 0 && entry.Term < m.Entries[i - 1].Term) || (i == 0 && entry.Term < m.PrevLogTerm))
            {
                return false;
            }
        }

        return true;
    }

    private void RejectAppend(AppendEntriesRequest m)
    {
        // Fast backtracking (thesis §5.3, "the follower can include the term of the conflicting entry and the
        // first index it stores for that term"): the leader then skips a whole term per round trip.
        ulong conflictIndex;
        ulong conflictTerm;
        if (m.PrevLogIndex > _log.LastIndex)
        {
            conflictIndex = _log.LastIndex + 1;
            conflictTerm = 0;
        }
        else
        {
            conflictTerm = _log.Term(m.PrevLogIndex);
            conflictIndex = _log.FirstIndexOfTermRun(m.PrevLogIndex, _commit);
        }

        Send(new AppendEntriesResponse(_id, m.From, _term, false, 0, m.PrevLogIndex, conflictIndex, conflictTerm, m.ReadSequence));
    }

    private void HandleSnapshot(InstallSnapshotRequest m)
    {
        var snapshot = m.Snapshot;
        ulong match;
        if (snapshot.Index <= _commit)
        {
            match = _commit;
        }
        else if (_log.TryGetTerm(snapshot.Index, out var term) && term == snapshot.Term)
        {
            // Our log already holds the snapshot's last entry, so (Log Matching) everything before it: just commit.
            CommitTo(snapshot.Index);
            match = snapshot.Index;
        }
        else
        {
            // Raft §7: the snapshot replaces the whole log; the host persists it and restores the application.
            _log.Reset(snapshot.Index, snapshot.Term);
            _stableIndex = snapshot.Index;
            _commit = snapshot.Index;
            _snapshot = snapshot;
            _pendingSnapshot = snapshot;
            match = snapshot.Index;
        }

        Vouch(new LogPosition(_log.Term(match), match));
        Send(new AppendEntriesResponse(_id, m.From, _term, true, match, 0, 0, 0, m.ReadSequence));
    }

    private void CommitTo(ulong index)
    {
        if (index > _commit)
        {
            _commit = Math.Min(index, _log.LastIndex);
        }
    }

    private void HandleAppendResponse(AppendEntriesResponse m)
    {
        var pr = _progress[m.From];
        pr.RecentActive = true;
        if (m.ReadSequence > pr.AckedReadSequence)
        {
            pr.AckedReadSequence = m.ReadSequence;
            ReleaseConfirmedReads();
        }

        if (m.Success)
        {
            if (m.MatchIndex > _log.LastIndex)
            {
                return; // Cannot match entries we never had; a confused or misbehaving peer.
            }

            var updated = false;
            if (m.MatchIndex > pr.Match)
            {
                pr.Match = m.MatchIndex;
                pr.StalledHeartbeats = 0;
                updated = true;
            }

            pr.Next = Math.Max(pr.Next, pr.Match + 1);
            if ((pr.State == ProgressState.Probe && m.MatchIndex + 1 >= pr.Next)
                || (pr.State == ProgressState.Snapshot && pr.Match >= pr.PendingSnapshot))
            {
                pr.BecomeReplicate();
            }
            else if (pr.State == ProgressState.Probe && updated)
            {
                pr.ProbeSent = false;
            }

            if (updated)
            {
                MaybeCommit();
            }

            SendAppend(m.From, allowEmpty: false);
            return;
        }

        if (m.RejectedIndex < pr.Match || m.RejectedIndex == 0)
        {
            return; // An answer to an old request, overtaken by a later acknowledgement (index 0 never mismatches).
        }

        var next = NextAfterRejection(m);
        if (m.RejectedIndex == pr.Match && pr.Match > 0)
        {
            // The follower rejects an entry it once acknowledged: its disk was wiped or rolled back. Forget
            // what it told us and find its log again (matchIndex may go down; the commit index never does).
            pr.Match = 0;
            pr.BecomeProbe(Math.Min(next, m.RejectedIndex));
        }
        else if (pr.State == ProgressState.Replicate)
        {
            pr.BecomeProbe(Math.Clamp(next, pr.Match + 1, m.RejectedIndex));
        }
        else if (pr.State == ProgressState.Probe && m.RejectedIndex == pr.Next - 1)
        {
            pr.BecomeProbe(Math.Clamp(next, pr.Match + 1, m.RejectedIndex));
        }
        else
        {
            return;
        }

        SendAppend(m.From, allowEmpty: true);
    }

    /// <summary>The leader's side of fast backtracking: skip the follower's conflicting term in one step.</summary>
    private ulong NextAfterRejection(AppendEntriesResponse m)
    {
        if (m.ConflictTerm > 0)
        {
            var last = _log.LastIndexOfTerm(m.ConflictTerm);
            if (last > 0)
            {
                return last + 1;
            }
        }

        return Math.Max(m.ConflictIndex, 1);
    }

    /// <summary>
    /// THE COMMIT RULE (Raft §5.3 and §5.4.2, thesis §3.6.2). The commit index becomes the highest index N
    /// stored on a majority (the leader counting only its own durable log) — but only if the entry at N is
    /// from the leader's current term. An entry from an earlier term is never committed by counting replicas
    /// (Raft figure 8: it could still be overwritten by a leader of an intervening term); it commits indirectly
    /// when an entry of the current term after it does, by the Log Matching property.
    /// </summary>
    private void MaybeCommit()
    {
        var matches = _members.Select(m => _progress[m].Match).OrderByDescending(i => i).ToArray();
        var majorityIndex = matches[_quorum - 1];
        if (majorityIndex <= _commit || _log.Term(majorityIndex) != _term)
        {
            return;
        }

        var firstInTerm = !CommittedInCurrentTerm();
        _commit = majorityIndex;
        if (firstInTerm && _readsAwaitingCommit.Count > 0)
        {
            var waiting = _readsAwaitingCommit.ToArray();
            _readsAwaitingCommit.Clear();
            StartReadRound(waiting);
            return; // The read round's heartbeats carry the new commit index.
        }

        // Tell followers now rather than at the next heartbeat (etcd-raft's bcastAppend on commit):
        // a follower serving a read waits until it has applied the leader's commit index.
        foreach (var peer in _peers)
        {
            SendAppend(peer, allowEmpty: true);
        }
    }

    private void StartReadRound(IReadOnlyList<ulong> requestIds)
    {
        _readSequence++;
        foreach (var id in requestIds)
        {
            _pendingReads.Add(new PendingRead(id, _commit, _readSequence));
        }

        if (_peers.Length == 0)
        {
            ReleaseConfirmedReads();
            return;
        }

        foreach (var peer in _peers)
        {
            SendHeartbeat(peer);
        }
    }

    /// <summary>
    /// Thesis §6.4: a read registered in round s is confirmed once a majority (this leader included) has
    /// answered a message of round s or later in this term — proof that no other leader existed when the
    /// read started. Confirming round s confirms every earlier round too.
    /// </summary>
    private void ReleaseConfirmedReads()
    {
        var released = 0;
        for (var i = 0; i < _pendingReads.Count; i++)
        {
            var sequence = _pendingReads[i].Sequence;
            var acks = 1 + _peers.Count(p => _progress[p].AckedReadSequence >= sequence);
            if (acks >= _quorum)
            {
                released = i + 1;
            }
        }

        for (var i = 0; i < released; i++)
        {
            _readStates.Add(new ReadState(_pendingReads[i].RequestId, _pendingReads[i].Index));
        }

        _pendingReads.RemoveRange(0, released);
    }

    private void HeartbeatTick(string peer)
    {
        var pr = _progress[peer];
        switch (pr.State)
        {
            case ProgressState.Probe:
                pr.ProbeSent = false;
                SendAppend(peer, allowEmpty: true);
                break;
            case ProgressState.Replicate:
                if (pr.Next - 1 > pr.Match)
                {
                    // Entries are in flight but nothing came back for a while: some were probably lost.
                    // Fall back to probing from what the follower is known to hold.
                    if (++pr.StalledHeartbeats >= Math.Max(2, _electionTicks / 2))
                    {
                        pr.BecomeProbe(pr.Match + 1);
                        SendAppend(peer, allowEmpty: true);
                        break;
                    }
                }

                SendHeartbeat(peer);
                break;
            case ProgressState.Snapshot:
                if (--pr.SnapshotResendTicks <= 0)
                {
                    pr.BecomeProbe(pr.Match + 1);
                    SendAppend(peer, allowEmpty: true);
                    break;
                }

                SendHeartbeat(peer);
                break;
        }
    }

    /// <summary>
    /// A heartbeat is an empty AppendEntries at the follower's known match index: it asserts leadership,
    /// carries the commit index and the ReadIndex round, and (because it is checked) reveals a follower that
    /// lost entries it had acknowledged.
    /// </summary>
    private void SendHeartbeat(string peer)
    {
        var pr = _progress[peer];
        var prev = pr.Match;
        if (!_log.TryGetTerm(prev, out var prevTerm))
        {
            prev = 0;
            prevTerm = 0;
        }

        Send(new AppendEntriesRequest(_id, peer, _term, prev, prevTerm, [], _commit, _readSequence));
    }

    private void SendAppend(string peer, bool allowEmpty)
    {
        var pr = _progress[peer];
        if (pr.State == ProgressState.Snapshot || (pr.State == ProgressState.Probe && pr.ProbeSent))
        {
            return;
        }

        pr.Next = Math.Min(pr.Next, _log.LastIndex + 1);

        if (!_log.TryGetTerm(pr.Next - 1, out var prevTerm))
        {
            SendSnapshot(peer, pr);
            return;
        }

        var last = Math.Min(_log.LastIndex, pr.Next + (ulong)_maxEntries - 1);
        var entries = _log.Slice(pr.Next, last);
        if (entries.Count == 0 && !allowEmpty)
        {
            return;
        }

        Send(new AppendEntriesRequest(_id, peer, _term, pr.Next - 1, prevTerm, entries, _commit, _readSequence));
        if (pr.State == ProgressState.Replicate)
        {
            pr.Next = last + 1;
        }
        else
        {
            pr.ProbeSent = true;
        }
    }

    private void SendSnapshot(string peer, Progress pr)
    {
        if (_snapshot is null)
        {
            throw new InvalidOperationException("The log is compacted but no snapshot is known.");
        }

        // Resend if no answer within an election timeout's worth of heartbeats.
        pr.BecomeSnapshot(_snapshot.Index, Math.Max(1, _electionTicks / _heartbeatTicks));
        Send(new InstallSnapshotRequest(_id, peer, _term, _snapshot, _readSequence));
    }

    private sealed record PendingRead(ulong RequestId, ulong Index, ulong Sequence);

    /// <summary>A log position ordered as Raft §5.4.1 orders "up to date": by term, then index.</summary>
    private readonly record struct LogPosition(ulong Term, ulong Index) : IComparable<LogPosition>
    {
        public int CompareTo(LogPosition other) =>
            Term != other.Term ? Term.CompareTo(other.Term) : Index.CompareTo(other.Index);

        public static bool operator <(LogPosition a, LogPosition b) => a.CompareTo(b) < 0;

        public static bool operator >(LogPosition a, LogPosition b) => a.CompareTo(b) > 0;

        public static bool operator <=(LogPosition a, LogPosition b) => a.CompareTo(b) <= 0;

        public static bool operator >=(LogPosition a, LogPosition b) => a.CompareTo(b) >= 0;
    }
}
