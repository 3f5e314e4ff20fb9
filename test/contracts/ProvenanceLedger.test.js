const { expect } = require("chai");
const { ethers, network } = require("hardhat");
const { loadFixture } = require("@nomicfoundation/hardhat-network-helpers");
const { StandardMerkleTree } = require("@openzeppelin/merkle-tree");
const {
  Roles,
  Kinds,
  MAX_SIGNATURE_AGE,
  typedData,
  latestTime,
  attestationArg,
  sign,
  malleate,
  deployAll,
  domainOf,
} = require("./helpers");

async function advance(seconds) {
  await network.provider.send("evm_increaseTime", [seconds]);
  await network.provider.send("evm_mine");
}

function randomUids(n) {
  return Array.from({ length: n }, () => ethers.hexlify(ethers.randomBytes(32)));
}

async function production(env, signer, overrides = {}) {
  const issuedAt = (await latestTime()) - 1;
  return typedData(env.domain, overrides.kindName || "PRODUCTION", {
    attester: signer.address,
    subject: ethers.id("lot:urn:epc:id:lgtin:4012345.012345.LOT42"),
    refs: [ethers.id("ref-1")],
    payloadHash: ethers.id("payload"),
    issuedAt,
    expiresAt: 0,
    ...overrides.message,
  });
}

describe("ProvenanceLedger: batch anchoring", function () {
  it("anchors a gap-free, hash-linked sequence and emits indexed events", async function () {
    const { ledger, anchorer } = await loadFixture(deployAll);
    const r0 = ethers.id("root-0");
    const r1 = ethers.id("root-1");
    await expect(ledger.connect(anchorer).anchorBatch(0, r0, ethers.ZeroHash, 16))
      .to.emit(ledger, "BatchAnchored")
      .withArgs(0, r0, ethers.ZeroHash, 16);
    await expect(ledger.connect(anchorer).anchorBatch(1, r1, r0, 3))
      .to.emit(ledger, "BatchAnchored")
      .withArgs(1, r1, r0, 3);
    expect(await ledger.batchRoot(0)).to.equal(r0);
    expect(await ledger.batchRoot(1)).to.equal(r1);
    expect(await ledger.batchRoot(2)).to.equal(ethers.ZeroHash);
  });

  it("reverts a root naming the wrong predecessor, a gap, a fork, a zero root and an empty batch", async function () {
    const { ledger, anchorer } = await loadFixture(deployAll);
    const a = ledger.connect(anchorer);
    const r0 = ethers.id("root-0");
    await expect(a.anchorBatch(0, r0, ethers.id("x"), 1))
      .to.be.revertedWithCustomError(ledger, "WrongPredecessor")
      .withArgs(0, ethers.ZeroHash, ethers.id("x"));
    await a.anchorBatch(0, r0, ethers.ZeroHash, 1);
    await expect(a.anchorBatch(1, ethers.id("r1"), ethers.id("not-r0"), 1))
      .to.be.revertedWithCustomError(ledger, "WrongPredecessor")
      .withArgs(1, r0, ethers.id("not-r0"));
    await expect(a.anchorBatch(2, ethers.id("r2"), r0, 1))
      .to.be.revertedWithCustomError(ledger, "BatchOutOfSequence")
      .withArgs(2);
    await expect(a.anchorBatch(0, ethers.id("fork"), ethers.ZeroHash, 1))
      .to.be.revertedWithCustomError(ledger, "BatchIndexTaken")
      .withArgs(0, r0);
    await expect(a.anchorBatch(1, ethers.ZeroHash, r0, 1)).to.be.revertedWithCustomError(ledger, "ZeroRoot");
    await expect(a.anchorBatch(1, ethers.id("r1"), r0, 0)).to.be.revertedWithCustomError(ledger, "EmptyBatch");
  });

  it("refuses anchoring by a non-anchorer, a suspended or rotated-out anchorer", async function () {
    const { ledger, registry, anchorer, maker, outsider } = await loadFixture(deployAll);
    await expect(ledger.connect(maker).anchorBatch(0, ethers.id("r"), ethers.ZeroHash, 1))
      .to.be.revertedWithCustomError(ledger, "NotAnchorer")
      .withArgs(maker.address);
    expect(await ledger.isAnchorer(anchorer.address)).to.equal(true);
    await registry.suspend(anchorer.address, ethers.ZeroHash);
    expect(await ledger.isAnchorer(anchorer.address)).to.equal(false);
    await expect(ledger.connect(anchorer).anchorBatch(0, ethers.id("r"), ethers.ZeroHash, 1)).to.be.revertedWithCustomError(
      ledger,
      "NotAnchorer",
    );
    await registry.reinstate(anchorer.address);
    await registry.rotateKey(anchorer.address, outsider.address);
    await expect(ledger.connect(anchorer).anchorBatch(0, ethers.id("r"), ethers.ZeroHash, 1)).to.be.revertedWithCustomError(
      ledger,
      "NotAnchorer",
    );
    await expect(ledger.connect(outsider).anchorBatch(0, ethers.id("r"), ethers.ZeroHash, 1)).to.emit(
      ledger,
      "BatchAnchored",
    );
  });

  it("stops an anchorer when its validity window ends", async function () {
    const { ledger, registry, anchorer } = await loadFixture(deployAll);
    await registry.setValidUntil(anchorer.address, (await latestTime()) + 50);
    await advance(100);
    expect(await ledger.isAnchorer(anchorer.address)).to.equal(false);
    await expect(ledger.connect(anchorer).anchorBatch(0, ethers.id("r"), ethers.ZeroHash, 1)).to.be.revertedWithCustomError(
      ledger,
      "NotAnchorer",
    );
  });

  it("accepts role pushes only from the registry, and syncs anchorers from it on request", async function () {
    const { ledger, registry, maker } = await loadFixture(deployAll);
    await expect(ledger.connect(maker).onEffectiveRolesChanged(maker.address, Roles.ANCHORER, 0, 2n ** 47n))
      .to.be.revertedWithCustomError(ledger, "NotRegistry")
      .withArgs(maker.address);
    // Roles changed while no listener was set are picked up by syncAnchorer.
    await registry.setRoleListener(ethers.ZeroAddress);
    await registry.grantRoles(maker.address, Roles.ANCHORER);
    expect(await ledger.isAnchorer(maker.address)).to.equal(false);
    await expect(ledger.syncAnchorer(maker.address)).to.emit(ledger, "AnchorerUpdated");
    expect(await ledger.isAnchorer(maker.address)).to.equal(true);
    await expect(ledger.syncAnchorer(maker.address)).not.to.emit(ledger, "AnchorerUpdated");
  });

  it("refuses an anchorer whose validity window has not started yet", async function () {
    const { ledger, registry, outsider } = await loadFixture(deployAll);
    const now = await latestTime();
    await registry.admit(outsider.address, ethers.id("later"), Roles.ANCHORER, now + 1000, now + 100000);
    expect(await ledger.isAnchorer(outsider.address)).to.equal(false);
    await expect(ledger.connect(outsider).anchorBatch(0, ethers.id("r"), ethers.ZeroHash, 1))
      .to.be.revertedWithCustomError(ledger, "NotAnchorer")
      .withArgs(outsider.address);
    await advance(1000);
    await expect(ledger.connect(outsider).anchorBatch(0, ethers.id("r"), ethers.ZeroHash, 1)).to.emit(
      ledger,
      "BatchAnchored",
    );
  });

  it("syncs a suspended or rotated-out anchorer to no rights", async function () {
    const { ledger, registry, anchorer, outsider } = await loadFixture(deployAll);
    await registry.setRoleListener(ethers.ZeroAddress);
    await registry.suspend(anchorer.address, ethers.ZeroHash);
    expect(await ledger.isAnchorer(anchorer.address)).to.equal(true); // not told yet
    await ledger.syncAnchorer(anchorer.address);
    expect(await ledger.isAnchorer(anchorer.address)).to.equal(false);
    await registry.reinstate(anchorer.address);
    await ledger.syncAnchorer(anchorer.address);
    expect(await ledger.isAnchorer(anchorer.address)).to.equal(true);
    await registry.rotateKey(anchorer.address, outsider.address);
    await ledger.syncAnchorer(anchorer.address);
    await ledger.syncAnchorer(outsider.address);
    expect(await ledger.isAnchorer(anchorer.address)).to.equal(false);
    expect(await ledger.isAnchorer(outsider.address)).to.equal(true);
  });

  it("proves inclusion with proofs made by @openzeppelin/merkle-tree (4,096 leaves)", async function () {
    const { ledger, anchorer } = await loadFixture(deployAll);
    const uids = randomUids(4096);
    const tree = StandardMerkleTree.of(
      uids.map((u) => [u]),
      ["bytes32"],
    );
    await ledger.connect(anchorer).anchorBatch(0, tree.root, ethers.ZeroHash, uids.length);
    for (const i of [0, 1, 2047, 4095]) {
      const proof = tree.getProof(i);
      expect(await ledger.verifyInclusion(uids[i], proof, 0)).to.equal(true);
      expect(StandardMerkleTree.verify(tree.root, ["bytes32"], [uids[i]], proof)).to.equal(true);
    }
    const proof = tree.getProof(5);
    expect(await ledger.verifyInclusion(ethers.id("not-in-tree"), proof, 0)).to.equal(false);
    expect(await ledger.verifyInclusion(uids[5], proof, 1)).to.equal(false);
    expect(await ledger.verifyInclusion(uids[6], proof, 0)).to.equal(false);
  });
});

describe("ProvenanceLedger: direct attestation", function () {
  it("computes the UID as the EIP-712 digest that ethers computes, for every kind", async function () {
    const env = await loadFixture(deployAll);
    for (const kindName of Object.keys(Kinds)) {
      const td = await production(env, env.maker, { kindName, message: { refs: randomUids(3) } });
      const expected = ethers.TypedDataEncoder.hash(td.domain, td.types, td.message);
      expect(await env.ledger.hashAttestation(attestationArg(td))).to.equal(expected);
      const typeString = `${Kinds[kindName][1]}(address attester,bytes32 subject,bytes32[] refs,bytes32 payloadHash,uint64 issuedAt,uint64 expiresAt)`;
      expect(await env.ledger.typeHashOf(Kinds[kindName][0])).to.equal(ethers.id(typeString));
    }
    expect(await env.ledger.typeHashOf(0)).to.equal(ethers.ZeroHash);
    const custody = Roles.MANUFACTURER | Roles.EXPORTER | Roles.CARRIER | Roles.IMPORTER;
    const expectedRoles = {
      IP_ASSET: Roles.RIGHTS_HOLDER,
      LICENCE: Roles.RIGHTS_HOLDER | Roles.MANUFACTURER,
      PRODUCTION: Roles.MANUFACTURER,
      TRANSFER: custody,
      TRANSFER_ACCEPTANCE: custody,
      SHIPMENT: Roles.EXPORTER,
      REVOCATION: Roles.RIGHTS_HOLDER | custody | Roles.CUSTOMS,
      CUSTOMS_FINDING: Roles.CUSTOMS,
      WATCHLIST: Roles.RIGHTS_HOLDER,
      OBSERVATION: Roles.RIGHTS_HOLDER | custody,
    };
    for (const [name, roles] of Object.entries(expectedRoles)) {
      expect(await env.ledger.requiredRolesOf(Kinds[name][0])).to.equal(roles, name);
    }
    expect(await env.ledger.requiredRolesOf(Kinds.SHIPMENT[0])).to.equal(Roles.EXPORTER);
    expect(await env.ledger.requiredRolesOf(42)).to.equal(0);
  });

  it("records a correctly signed attestation and emits its data", async function () {
    const env = await loadFixture(deployAll);
    const td = await production(env, env.maker);
    const uid = ethers.TypedDataEncoder.hash(td.domain, td.types, td.message);
    const signature = await sign(env.maker, td);
    await expect(env.ledger.connect(env.outsider).attest(attestationArg(td), signature))
      .to.emit(env.ledger, "Attested")
      .withArgs(uid, env.maker.address, td.kind, td.message.subject, td.message.refs, td.message.payloadHash, td.message.issuedAt, 0);
    const record = await env.ledger.getRecord(uid);
    expect(record.attester).to.equal(env.maker.address);
    expect(record.revokedAt).to.equal(0);
    await expect(env.ledger.attest(attestationArg(td), signature))
      .to.be.revertedWithCustomError(env.ledger, "AlreadyAttested")
      .withArgs(uid);
  });

  it("rejects a forged signature and a malleable (high-s) twin of a valid one", async function () {
    const env = await loadFixture(deployAll);
    const td = await production(env, env.maker);
    const uid = ethers.TypedDataEncoder.hash(td.domain, td.types, td.message);
    const forged = await sign(env.outsider, td);
    await expect(env.ledger.attest(attestationArg(td), forged))
      .to.be.revertedWithCustomError(env.ledger, "InvalidSignature")
      .withArgs(env.maker.address, uid);
    const good = await sign(env.maker, td);
    // The twin still recovers to the maker with plain ecrecover: only the low-s rule stops it.
    const twin = malleate(good);
    const ecrecoverInput = ethers.concat([
      uid,
      ethers.zeroPadValue(ethers.dataSlice(twin, 64, 65), 32),
      ethers.dataSlice(twin, 0, 32),
      ethers.dataSlice(twin, 32, 64),
    ]);
    const recovered = await ethers.provider.call({ to: "0x0000000000000000000000000000000000000001", data: ecrecoverInput });
    expect(ethers.getAddress(ethers.dataSlice(recovered, 12))).to.equal(env.maker.address);
    await expect(env.ledger.attest(attestationArg(td), twin)).to.be.revertedWithCustomError(env.ledger, "InvalidSignature");
    await expect(env.ledger.attest(attestationArg(td), good.slice(0, 100))).to.be.revertedWithCustomError(
      env.ledger,
      "InvalidSignature",
    );
  });

  it("rejects a signature made for another chainId or another contract", async function () {
    const env = await loadFixture(deployAll);
    const otherChain = await production(env, env.maker);
    otherChain.domain = { ...env.domain, chainId: 1n };
    await expect(env.ledger.attest(attestationArg(otherChain), await sign(env.maker, otherChain))).to.be.revertedWithCustomError(
      env.ledger,
      "InvalidSignature",
    );
    const twinLedger = await ethers.deployContract("ProvenanceLedger", [await env.registry.getAddress(), MAX_SIGNATURE_AGE]);
    const forTwin = await production(env, env.maker);
    forTwin.domain = await domainOf(twinLedger);
    const sigForTwin = await sign(env.maker, forTwin);
    await expect(env.ledger.attest(attestationArg(forTwin), sigForTwin)).to.be.revertedWithCustomError(
      env.ledger,
      "InvalidSignature",
    );
    await expect(twinLedger.attest(attestationArg(forTwin), sigForTwin)).to.emit(twinLedger, "Attested");
  });

  it("rejects an attester without the role, suspended, or whose key was rotated out before it signed", async function () {
    const env = await loadFixture(deployAll);
    const shipment = await production(env, env.maker, { kindName: "SHIPMENT" });
    await expect(env.ledger.attest(attestationArg(shipment), await sign(env.maker, shipment)))
      .to.be.revertedWithCustomError(env.ledger, "RoleMissing")
      .withArgs(env.maker.address, Kinds.SHIPMENT[0], Roles.EXPORTER, shipment.message.issuedAt);

    await env.registry.suspend(env.carrier.address, ethers.ZeroHash);
    await advance(2);
    const transfer = await production(env, env.carrier, { kindName: "TRANSFER" });
    await expect(env.ledger.attest(attestationArg(transfer), await sign(env.carrier, transfer))).to.be.revertedWithCustomError(
      env.ledger,
      "RoleMissing",
    );

    const [, , , , , , , , , newKey] = await ethers.getSigners();
    await env.registry.rotateKey(env.exporter.address, newKey.address);
    await advance(2);
    const late = await production(env, env.exporter, { kindName: "SHIPMENT" });
    await expect(env.ledger.attest(attestationArg(late), await sign(env.exporter, late))).to.be.revertedWithCustomError(
      env.ledger,
      "RoleMissing",
    );
  });

  it("keeps a signature made before rotation valid after it", async function () {
    const env = await loadFixture(deployAll);
    const early = await production(env, env.exporter, { kindName: "SHIPMENT" });
    const signature = await sign(env.exporter, early);
    await advance(5);
    const [, , , , , , , , , newKey] = await ethers.getSigners();
    await env.registry.rotateKey(env.exporter.address, newKey.address);
    await expect(env.ledger.attest(attestationArg(early), signature)).to.emit(env.ledger, "Attested");
  });

  it("rejects signing times in the future, too old, unknown kinds and expired attestations", async function () {
    const env = await loadFixture(deployAll);
    const now = await latestTime();
    const future = await production(env, env.maker, { message: { issuedAt: now + 3600 } });
    await expect(env.ledger.attest(attestationArg(future), await sign(env.maker, future))).to.be.revertedWithCustomError(
      env.ledger,
      "IssuedInFuture",
    );
    await advance(MAX_SIGNATURE_AGE + 100);
    const old = await production(env, env.maker, { message: { issuedAt: now } });
    await expect(env.ledger.attest(attestationArg(old), await sign(env.maker, old))).to.be.revertedWithCustomError(
      env.ledger,
      "SignatureTooOld",
    );
    const t = await latestTime();
    const expired = await production(env, env.maker, { message: { issuedAt: t - 10, expiresAt: t - 5 } });
    await expect(env.ledger.attest(attestationArg(expired), await sign(env.maker, expired)))
      .to.be.revertedWithCustomError(env.ledger, "AttestationExpired")
      .withArgs(t - 5);
    const inverted = await production(env, env.maker, { message: { issuedAt: t - 10, expiresAt: t - 20 } });
    await expect(env.ledger.hashAttestation(attestationArg(inverted))).to.be.revertedWithCustomError(
      env.ledger,
      "AttestationExpired",
    );
    const unknown = { ...attestationArg(old), kind: 99 };
    await expect(env.ledger.attest(unknown, "0x")).to.be.revertedWithCustomError(env.ledger, "UnknownKind").withArgs(99);
  });

  it("accepts an ERC-1271 wallet signer and rejects a signature its owner did not make", async function () {
    const env = await loadFixture(deployAll);
    const wallet = await ethers.deployContract("TestERC1271Wallet", [env.maker.address]);
    const walletAddress = await wallet.getAddress();
    await env.registry.admit(walletAddress, ethers.id("wallet"), Roles.MANUFACTURER, 0, env.forever);
    await advance(1);
    const td = await production(env, { address: walletAddress }, {});
    const ownerSig = await sign(env.maker, td);
    await expect(env.ledger.attest(attestationArg(td), ownerSig)).to.emit(env.ledger, "Attested");
    const td2 = await production(env, { address: walletAddress }, { message: { payloadHash: ethers.id("other") } });
    await expect(env.ledger.attest(attestationArg(td2), await sign(env.outsider, td2))).to.be.revertedWithCustomError(
      env.ledger,
      "InvalidSignature",
    );
    // The wallet (not its owner key directly) revokes its own attestation.
    const uid = ethers.TypedDataEncoder.hash(td.domain, td.types, td.message);
    await expect(env.ledger.connect(env.maker).revoke(uid)).to.be.revertedWithCustomError(env.ledger, "NotAttester");
    const data = env.ledger.interface.encodeFunctionData("revoke", [uid]);
    await expect(wallet.connect(env.maker).execute(await env.ledger.getAddress(), data)).to.emit(env.ledger, "Revoked");
    await expect(wallet.connect(env.outsider).execute(await env.ledger.getAddress(), data)).to.be.revertedWithCustomError(
      wallet,
      "NotOwner",
    );
    await expect(wallet.connect(env.maker).execute(await env.ledger.getAddress(), data)).to.be.revertedWithCustomError(
      wallet,
      "CallFailed",
    );
  });

  it("lets only the original attester revoke, once", async function () {
    const env = await loadFixture(deployAll);
    const td = await production(env, env.maker);
    const uid = ethers.TypedDataEncoder.hash(td.domain, td.types, td.message);
    await expect(env.ledger.connect(env.maker).revoke(uid)).to.be.revertedWithCustomError(env.ledger, "UnknownAttestation").withArgs(uid);
    await env.ledger.attest(attestationArg(td), await sign(env.maker, td));
    await expect(env.ledger.connect(env.outsider).revoke(uid))
      .to.be.revertedWithCustomError(env.ledger, "NotAttester")
      .withArgs(uid, env.outsider.address, env.maker.address);
    await expect(env.ledger.connect(env.maker).revoke(uid)).to.emit(env.ledger, "Revoked");
    const record = await env.ledger.getRecord(uid);
    expect(record.revokedAt).to.be.greaterThan(0n);
    await expect(env.ledger.connect(env.maker).revoke(uid)).to.be.revertedWithCustomError(env.ledger, "AlreadyRevoked");
  });
});
