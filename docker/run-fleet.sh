#!/usr/bin/env bash
# `make run-containers`: a fleet of N members and two witnesses from the image, on a private
# Docker network.
#
#   docker/run-fleet.sh IMAGE [N]          start (provisioning the fleet on first use)
#   docker/run-fleet.sh IMAGE N down       stop and remove the containers (volumes kept)
#   docker/run-fleet.sh IMAGE N destroy    remove the containers, the volumes and the network
#
# Members are containers hsmvault-member-I (network alias member-I) on the network hsmvault;
# each has its own volumes hsmvault-member-I-{token,data,config}. Their client endpoints are
# published on 127.0.0.1 only, on ports Docker picks; the peer ports stay inside the network.
# The development tenant's private key (it signs users' JWTs) is in the volume hsmvault-client.
# Witnesses are containers hsmvault-witness-J (alias witness-J, J = 1..WITNESSES, default 2) in
# dev mode: each makes its own token and Ed25519 key, and an operator key for the namespace
# dev-fleet, in its volumes hsmvault-witness-J-{token,data,config}; their API port is published
# on 127.0.0.1 too, and their checkpoint verifier keys are printed once they have started.
set -euo pipefail

image=${1:?usage: $0 IMAGE [N] [up|down|destroy]}
count=${2:-3}
action=${3:-up}
witnesses=${WITNESSES:-2}
network=hsmvault
label=hsmvault.fleet=run-containers

members() {
    for i in $(seq 1 "$count"); do echo "hsmvault-member-$i"; done
    for j in $(seq 1 "$witnesses"); do echo "hsmvault-witness-$j"; done
}

case $action in
    down)
        docker rm -f $(members) >/dev/null 2>&1 || true
        exit 0 ;;
    destroy)
        docker rm -f $(docker ps -aq --filter "label=$label") >/dev/null 2>&1 || true
        docker volume rm $(docker volume ls -q --filter "label=$label") >/dev/null 2>&1 || true
        docker network rm "$network" >/dev/null 2>&1 || true
        exit 0 ;;
    up) ;;
    *) echo "unknown action '$action'" >&2; exit 64 ;;
esac

docker network inspect "$network" >/dev/null 2>&1 || docker network create --label "$label" "$network" >/dev/null
mounts=(--mount "type=volume,src=hsmvault-client,dst=/provision/client,volume-label=$label")
for i in $(seq 1 "$count"); do
    for part in token config; do
        mounts+=(--mount "type=volume,src=hsmvault-member-$i-$part,dst=/provision/member-$i/$part,volume-label=$label")
    done
done
# The ceremony: every token in one process, once (it does nothing when the volumes hold a fleet).
docker run --rm --user 0 --label "$label" --network none "${mounts[@]}" "$image" provision-fleet "$count"

for i in $(seq 1 "$count"); do
    name=hsmvault-member-$i
    docker rm -f "$name" >/dev/null 2>&1 || true
    docker run -d --name "$name" --label "$label" --network "$network" --network-alias "member-$i" \
        --read-only --tmpfs /tmp --restart unless-stopped \
        --mount "type=volume,src=hsmvault-member-$i-token,dst=/var/lib/hsmvault/token" \
        --mount "type=volume,src=hsmvault-member-$i-data,dst=/var/lib/hsmvault/data,volume-label=$label" \
        --mount "type=volume,src=hsmvault-member-$i-config,dst=/etc/hsmvault" \
        --publish 127.0.0.1::7101 "$image" >/dev/null
done

for j in $(seq 1 "$witnesses"); do
    name=hsmvault-witness-$j
    docker rm -f "$name" >/dev/null 2>&1 || true
    mounts=()
    for part in token data config; do
        dir=/var/lib/hsmvault/$part
        [[ $part == config ]] && dir=/etc/hsmvault
        mounts+=(--mount "type=volume,src=$name-$part,dst=$dir,volume-label=$label")
    done
    docker run -d --name "$name" --label "$label" --network "$network" --network-alias "witness-$j" \
        --read-only --tmpfs /tmp --restart unless-stopped "${mounts[@]}" \
        -e HSMVAULT_DEV_MODE=1 -e HSMVAULT_WITNESS_ORIGIN="witness-$j.hsmvault.internal/log" \
        --publish 127.0.0.1::7301 "$image" witness >/dev/null
done

echo "fleet of $count on network '$network'; client endpoints:"
for i in $(seq 1 "$count"); do
    echo "  member-$i  http://$(docker port "hsmvault-member-$i" 7101/tcp)"
done
# The verifier key is logged when the witness has opened its token key and its log.
echo "witnesses (http://witness-J:7301 inside the network; namespace dev-fleet), endpoint and verifier key:"
for j in $(seq 1 "$witnesses"); do
    name=hsmvault-witness-$j vkey=""
    for _ in $(seq 1 120); do
        vkey=$(docker logs "$name" 2>&1 | sed -n 's/.*; verifier key \([^ ]*\)$/\1/p' | tail -1)
        [[ -n $vkey ]] && break
        [[ $(docker inspect -f '{{.State.Running}}' "$name") == true ]] || break
        sleep 1
    done
    echo "  witness-$j  http://$(docker port "$name" 7301/tcp)  ${vkey:-(not started: docker logs $name)}"
done
cat <<TEXT
the CLI inside a member, e.g.:
  docker run --rm -it --network $network -e HSMVAULT_SERVER=http://member-1:7101 \\
    --mount type=volume,src=hsmvault-client,dst=/client $image \\
    hsmvault register --user alice --tenant-key /client/dev-tenant.key.pem --unverified-fleet
(the container fleet serves no validation bundle yet: publish one with `hsmvault fleet bundle` to verify it)
a witness's latest checkpoint (NOT_FOUND until something is logged) with curl, e.g.:
  printf '\\0\\0\\0\\0\\0' | curl -s --http2-prior-knowledge -H 'content-type: application/grpc' \\
    -H 'te: trailers' --data-binary @- -D - http://$(docker port hsmvault-witness-1 7301/tcp)/hsmvault.v1.Witness/GetCheckpoint
submissions to namespace dev-fleet are signed with the witness's operator key (ECDSA P-256):
  docker exec hsmvault-witness-1 cat /etc/hsmvault/operator.key.pem
health: docker ps --filter label=$label   (healthy = SERVING)
stop:   make run-containers-down; remove everything: make run-containers-destroy
TEXT
