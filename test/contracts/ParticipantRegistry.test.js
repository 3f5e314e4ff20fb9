const { expect } = require("chai");
const { ethers, network } = require("hardhat");
const { loadFixture } = require("@nomicfoundation/hardhat-network-helpers");
const { Roles, deployAll, latestTime } = require("./helpers");

async function advance(seconds) {
  await network.provider.send("evm_increaseTime", [seconds]);
  await network.provider.send("evm_mine");
}

/** Sends every transaction of `sends` (functions returning a sent transaction) into one
 * block, so that they share one block time; returns that block's timestamp. */
async function inOneBlock(...sends) {
  await network.provider.send("evm_setAutomine", [false]);
  const txs = [];
  try {
    for (const send of sends) txs.push(await send({ gasLimit: 1_000_000 }));
    await network.provider.send("evm_mine");
  } finally {
    await network.provider.send("evm_setAutomine", [true]);
  }
  const receipts = await Promise.all(txs.map((tx) => tx.wait()));
  expect(new Set(receipts.map((r) => r.blockNumber)).size).to.equal(1);
  return (await ethers.provider.getBlock(receipts[0].blockNumber)).timestamp;
}

/** Rebuilds `rolesAt(account, t)` from EffectiveRolesChanged events alone, the way an
 * off-chain auditor does: for equal `since` the last event wins, and the answer at t is
 * the checkpoint with the greatest `since` <= t (zero outside the latest window). */
async function replayed(registry, account) {
  const events = await registry.queryFilter(registry.filters.EffectiveRolesChanged(account));
  const bySince = new Map();
  for (const e of events) bySince.set(Number(e.args.since), e.args);
  const latest = events[events.length - 1].args;
  return {
    at(t) {
      if (t < Number(latest.validFrom) || t >= Number(latest.validUntil)) return { roles: 0n };
      const since = Math.max(...[...bySince.keys()].filter((s) => s <= t));
      return since === -Infinity ? { roles: 0n } : bySince.get(since);
    },
  };
}

/** Asserts the event replay equals the contract's rolesAt over [from, to]. */
async function expectReplayMatches(registry, account, from, to) {
  const replay = await replayed(registry, account);
  for (let t = from; t <= to; t += 1) {
    expect(replay.at(t).roles, `roles at ${t}`).to.equal(await registry.rolesAt(account, t));
  }
}

describe("ParticipantRegistry", function () {
  it("admits the initial registrar and answers role questions at a time", async function () {
    const { registry, registrar, maker } = await loadFixture(deployAll);
    const now = await latestTime();
    expect(await registry.hasRoleAt(registrar.address, Roles.REGISTRAR, now)).to.equal(true);
    expect(await registry.hasRoleAt(maker.address, Roles.MANUFACTURER, now)).to.equal(true);
    expect(await registry.hasRoleAt(maker.address, Roles.EXPORTER, now)).to.equal(false);
    expect(await registry.hasRoleAt(maker.address, 0, now)).to.equal(false);
    expect(await registry.hasAnyRoleAt(maker.address, Roles.EXPORTER | Roles.MANUFACTURER, now)).to.equal(true);
    expect(await registry.rolesAt(maker.address, now)).to.equal(Roles.MANUFACTURER);
    const p = await registry.participant(maker.address);
    expect(p.participantId).to.equal(ethers.id("maker"));
    expect(await registry.checkpointCount(maker.address)).to.equal(1n);
  });

  it("never answers yes before admission (no backdating)", async function () {
    const { registry, outsider, forever } = await loadFixture(deployAll);
    const before = await latestTime();
    await advance(10);
    await expect(registry.admit(outsider.address, ethers.id("o"), Roles.CARRIER, before - 1000, forever)).to.emit(
      registry,
      "ParticipantAdmitted",
    );
    expect(await registry.hasRoleAt(outsider.address, Roles.CARRIER, before)).to.equal(false);
    expect(await registry.hasRoleAt(outsider.address, Roles.CARRIER, await latestTime())).to.equal(true);
  });

  it("rejects admission by a non-registrar, twice, of zero, with bad roles or an empty window", async function () {
    const { registry, maker, outsider, forever } = await loadFixture(deployAll);
    await expect(registry.connect(maker).admit(outsider.address, ethers.id("x"), Roles.CARRIER, 0, forever))
      .to.be.revertedWithCustomError(registry, "NotRegistrar")
      .withArgs(maker.address);
    await expect(registry.admit(maker.address, ethers.id("x"), Roles.CARRIER, 0, forever))
      .to.be.revertedWithCustomError(registry, "AlreadyRegistered")
      .withArgs(maker.address);
    await expect(registry.admit(ethers.ZeroAddress, ethers.id("x"), Roles.CARRIER, 0, forever)).to.be.revertedWithCustomError(
      registry,
      "ZeroAddress",
    );
    await expect(registry.admit(outsider.address, ethers.id("x"), 1 << 12, 0, forever))
      .to.be.revertedWithCustomError(registry, "InvalidRoles")
      .withArgs(1 << 12);
    await expect(registry.admit(outsider.address, ethers.id("x"), Roles.CARRIER, 0, 1)).to.be.revertedWithCustomError(
      registry,
      "InvalidWindow",
    );
  });

  it("grants and revokes roles from now on, keeping history", async function () {
    const { registry, maker, outsider } = await loadFixture(deployAll);
    const t0 = await latestTime();
    await advance(5);
    await expect(registry.grantRoles(maker.address, Roles.EXPORTER))
      .to.emit(registry, "RolesGranted")
      .withArgs(maker.address, Roles.EXPORTER, Roles.MANUFACTURER | Roles.EXPORTER);
    const t1 = await latestTime();
    await advance(5);
    await expect(registry.revokeRoles(maker.address, Roles.MANUFACTURER))
      .to.emit(registry, "RolesRevoked")
      .withArgs(maker.address, Roles.MANUFACTURER, Roles.EXPORTER);
    const t2 = await latestTime();
    expect(await registry.rolesAt(maker.address, t0)).to.equal(Roles.MANUFACTURER);
    expect(await registry.rolesAt(maker.address, t1)).to.equal(Roles.MANUFACTURER | Roles.EXPORTER);
    expect(await registry.rolesAt(maker.address, t2)).to.equal(Roles.EXPORTER);
    await expect(registry.grantRoles(maker.address, 0)).to.be.revertedWithCustomError(registry, "InvalidRoles");
    await expect(registry.revokeRoles(maker.address, 1 << 15)).to.be.revertedWithCustomError(registry, "InvalidRoles");
    await expect(registry.grantRoles(outsider.address, Roles.CARRIER))
      .to.be.revertedWithCustomError(registry, "UnknownParticipant")
      .withArgs(outsider.address);
    await expect(registry.connect(maker).grantRoles(maker.address, Roles.CARRIER)).to.be.revertedWithCustomError(
      registry,
      "NotRegistrar",
    );
    await expect(registry.connect(maker).revokeRoles(maker.address, Roles.EXPORTER)).to.be.revertedWithCustomError(
      registry,
      "NotRegistrar",
    );
  });

  it("suspends and reinstates without rewriting the past", async function () {
    const { registry, maker } = await loadFixture(deployAll);
    const before = await latestTime();
    await advance(5);
    await expect(registry.suspend(maker.address, ethers.id("fraud")))
      .to.emit(registry, "ParticipantSuspended")
      .withArgs(maker.address, ethers.id("fraud"));
    const during = await latestTime();
    await expect(registry.suspend(maker.address, ethers.ZeroHash))
      .to.be.revertedWithCustomError(registry, "SuspensionUnchanged")
      .withArgs(maker.address, true);
    await advance(5);
    await expect(registry.reinstate(maker.address)).to.emit(registry, "ParticipantReinstated").withArgs(maker.address);
    const after = await latestTime();
    expect(await registry.hasRoleAt(maker.address, Roles.MANUFACTURER, before)).to.equal(true);
    expect(await registry.hasRoleAt(maker.address, Roles.MANUFACTURER, during)).to.equal(false);
    expect(await registry.hasRoleAt(maker.address, Roles.MANUFACTURER, after)).to.equal(true);
    await expect(registry.reinstate(maker.address))
      .to.be.revertedWithCustomError(registry, "SuspensionUnchanged")
      .withArgs(maker.address, false);
    await expect(registry.connect(maker).suspend(maker.address, ethers.ZeroHash)).to.be.revertedWithCustomError(
      registry,
      "NotRegistrar",
    );
    await expect(registry.connect(maker).reinstate(maker.address)).to.be.revertedWithCustomError(registry, "NotRegistrar");
  });

  it("ends validity windows only into the future", async function () {
    const { registry, maker } = await loadFixture(deployAll);
    const now = await latestTime();
    await expect(registry.setValidUntil(maker.address, now + 100)).to.emit(registry, "ValidityChanged");
    await expect(registry.setValidUntil(maker.address, now - 100)).to.be.revertedWithCustomError(registry, "InvalidWindow");
    await advance(200);
    expect(await registry.hasRoleAt(maker.address, Roles.MANUFACTURER, await latestTime())).to.equal(false);
    expect(await registry.hasRoleAt(maker.address, Roles.MANUFACTURER, now + 50)).to.equal(true);
    // An ended window cannot be revived: signatures made while invalid stay invalid.
    await expect(registry.setValidUntil(maker.address, now + 10000)).to.be.revertedWithCustomError(
      registry,
      "InvalidWindow",
    );
    await expect(registry.connect(maker).setValidUntil(maker.address, now + 10000)).to.be.revertedWithCustomError(
      registry,
      "NotRegistrar",
    );
  });

  it("refuses empty or undefined role sets in grant and revoke", async function () {
    const { registry, maker } = await loadFixture(deployAll);
    for (const fn of ["grantRoles", "revokeRoles"]) {
      await expect(registry[fn](maker.address, 0)).to.be.revertedWithCustomError(registry, "InvalidRoles").withArgs(0);
      await expect(registry[fn](maker.address, 1 << 12))
        .to.be.revertedWithCustomError(registry, "InvalidRoles")
        .withArgs(1 << 12);
    }
    expect(await registry.rolesAt(maker.address, await latestTime())).to.equal(Roles.MANUFACTURER);
  });

  it("refuses a window end at or before a window start still in the future", async function () {
    const { registry, outsider } = await loadFixture(deployAll);
    const now = await latestTime();
    await registry.admit(outsider.address, ethers.id("later"), Roles.CARRIER, now + 1000, now + 5000);
    await expect(registry.setValidUntil(outsider.address, now + 1000))
      .to.be.revertedWithCustomError(registry, "InvalidWindow")
      .withArgs(now + 1000, now + 1000);
    await expect(registry.setValidUntil(outsider.address, now + 2000)).to.emit(registry, "ValidityChanged");
  });

  it("rotates a key: the new key takes over, the old one keeps its past", async function () {
    const { registry, maker, outsider, carrier } = await loadFixture(deployAll);
    const beforeRotation = await latestTime();
    await advance(5);
    await expect(registry.rotateKey(maker.address, outsider.address))
      .to.emit(registry, "KeyRotated")
      .withArgs(maker.address, outsider.address, ethers.id("maker"), (at) => at > BigInt(beforeRotation));
    const afterRotation = await latestTime();
    expect(await registry.hasRoleAt(maker.address, Roles.MANUFACTURER, beforeRotation)).to.equal(true);
    expect(await registry.hasRoleAt(maker.address, Roles.MANUFACTURER, afterRotation)).to.equal(false);
    expect(await registry.hasRoleAt(outsider.address, Roles.MANUFACTURER, afterRotation)).to.equal(true);
    expect(await registry.hasRoleAt(outsider.address, Roles.MANUFACTURER, beforeRotation)).to.equal(false);
    const old = await registry.participant(maker.address);
    expect(old.retired).to.equal(true);
    expect(old.successor).to.equal(outsider.address);
    expect((await registry.participant(outsider.address)).participantId).to.equal(ethers.id("maker"));
    await expect(registry.grantRoles(maker.address, Roles.CARRIER))
      .to.be.revertedWithCustomError(registry, "KeyRetired")
      .withArgs(maker.address);
    await expect(registry.rotateKey(maker.address, carrier.address))
      .to.be.revertedWithCustomError(registry, "KeyRetired")
      .withArgs(maker.address);
    await expect(registry.connect(carrier).rotateKey(outsider.address, carrier.address))
      .to.be.revertedWithCustomError(registry, "NotRegistrar")
      .withArgs(carrier.address);
  });

  it("publishes a participant's name only when it hashes to the participant id", async function () {
    const { registry, maker, outsider, carrier } = await loadFixture(deployAll);
    await expect(registry.publishName(maker.address, "maker"))
      .to.emit(registry, "ParticipantNamed")
      .withArgs(maker.address, ethers.id("maker"), "maker");
    // Even the registrar cannot assert another name than the one the id was made from.
    await expect(registry.publishName(maker.address, "Maker Ltd"))
      .to.be.revertedWithCustomError(registry, "NameMismatch")
      .withArgs(maker.address, ethers.id("maker"), ethers.id("Maker Ltd"));
    await expect(registry.publishName(outsider.address, "outsider"))
      .to.be.revertedWithCustomError(registry, "UnknownParticipant")
      .withArgs(outsider.address);
    await expect(registry.connect(carrier).publishName(maker.address, "maker"))
      .to.be.revertedWithCustomError(registry, "NotRegistrar")
      .withArgs(carrier.address);
    // A rotated-out key keeps its id, so it can still be named (its past signatures stay valid).
    await registry.rotateKey(maker.address, outsider.address);
    await expect(registry.publishName(maker.address, "maker")).to.emit(registry, "ParticipantNamed");
    await expect(registry.publishName(outsider.address, "maker"))
      .to.emit(registry, "ParticipantNamed")
      .withArgs(outsider.address, ethers.id("maker"), "maker");
  });

  it("lets the registrar rotate a suspended key, which stays suspended", async function () {
    const { registry, maker, outsider } = await loadFixture(deployAll);
    await registry.suspend(maker.address, ethers.id("leak"));
    await registry.rotateKey(maker.address, outsider.address);
    expect((await registry.participant(outsider.address)).suspended).to.equal(true);
    expect(await registry.rolesAt(outsider.address, await latestTime())).to.equal(0);
  });

  it("emits one EffectiveRolesChanged per change, enough to replay history", async function () {
    const { registry, maker } = await loadFixture(deployAll);
    await expect(registry.suspend(maker.address, ethers.ZeroHash))
      .to.emit(registry, "EffectiveRolesChanged")
      .withArgs(maker.address, 0, Roles.MANUFACTURER, true, false, (since) => since > 0n, (v) => v > 0n, 2n ** 48n - 1n);
  });

  it("only a registrar sets the role listener", async function () {
    const { registry, maker, ledger } = await loadFixture(deployAll);
    await expect(registry.connect(maker).setRoleListener(await ledger.getAddress())).to.be.revertedWithCustomError(
      registry,
      "NotRegistrar",
    );
    await expect(registry.setRoleListener(ethers.ZeroAddress)).to.emit(registry, "RoleListenerSet");
    expect(await registry.roleListener()).to.equal(ethers.ZeroAddress);
  });

  describe("attacks found in review", function () {
    it("a stolen key cannot rotate itself to take over the participant's identity", async function () {
      const { registry, maker } = await loadFixture(deployAll);
      const thief = ethers.Wallet.createRandom().address;
      const fresh = ethers.Wallet.createRandom().address;
      // The thief holds maker's key and tries to move maker's identity to a key of its own.
      await expect(registry.connect(maker).rotateKey(maker.address, thief))
        .to.be.revertedWithCustomError(registry, "NotRegistrar")
        .withArgs(maker.address);
      expect((await registry.participant(thief)).validUntil).to.equal(0n);
      expect((await registry.participant(maker.address)).retired).to.equal(false);
      // So the registrar still can react: suspend the stolen key, then rotate the
      // participant to a fresh key of the real owner, and reinstate that one.
      await registry.suspend(maker.address, ethers.id("key stolen"));
      await registry.rotateKey(maker.address, fresh);
      await registry.reinstate(fresh);
      const now = await latestTime();
      expect(await registry.rolesAt(fresh, now)).to.equal(Roles.MANUFACTURER);
      expect((await registry.participant(fresh)).participantId).to.equal(ethers.id("maker"));
      expect(await registry.rolesAt(maker.address, now)).to.equal(0);
      expect(await registry.rolesAt(thief, now)).to.equal(0);
    });

    it("a key admitted for next month does not become valid today by being rotated", async function () {
      const { registry, outsider } = await loadFixture(deployAll);
      const now = await latestTime();
      const start = now + 30 * 86400;
      const end = start + 365 * 86400;
      await registry.admit(outsider.address, ethers.id("newcomer"), Roles.CARRIER, start, end);
      // The key itself may not rotate (it could otherwise move its own start forward)...
      const successor = ethers.Wallet.createRandom().address;
      await expect(registry.connect(outsider).rotateKey(outsider.address, successor))
        .to.be.revertedWithCustomError(registry, "NotRegistrar")
        .withArgs(outsider.address);
      // ...and a registrar's rotation keeps the start where it was admitted.
      await registry.rotateKey(outsider.address, successor);
      const fresh = await registry.participant(successor);
      expect(fresh.validFrom).to.equal(BigInt(start));
      expect(fresh.validUntil).to.equal(BigInt(end));
      const after = await latestTime();
      expect(await registry.hasRoleAt(successor, Roles.CARRIER, after)).to.equal(false);
      expect(await registry.hasRoleAt(successor, Roles.CARRIER, start - 1)).to.equal(false);
      expect(await registry.hasRoleAt(successor, Roles.CARRIER, start)).to.equal(true);
      await expectReplayMatches(registry, successor, after - 1, after + 1);
    });

    it("a rotation is announced as a rotation, never as a new admission", async function () {
      const { registry, maker, outsider } = await loadFixture(deployAll);
      const tx = registry.rotateKey(maker.address, outsider.address);
      await expect(tx).to.emit(registry, "KeyRotated");
      await expect(tx).not.to.emit(registry, "ParticipantAdmitted");
      const t = await latestTime();
      await expect(tx)
        .to.emit(registry, "EffectiveRolesChanged")
        .withArgs(outsider.address, Roles.MANUFACTURER, Roles.MANUFACTURER, false, false, t, t, 2n ** 48n - 1n);
      await expect(tx)
        .to.emit(registry, "EffectiveRolesChanged")
        .withArgs(maker.address, 0, Roles.MANUFACTURER, false, true, t, (v) => v > 0n, 2n ** 48n - 1n);
    });

    it("a reinstatement in the same second cannot erase a suspension from history", async function () {
      const { registry, maker } = await loadFixture(deployAll);
      const before = await latestTime();
      const count = await registry.checkpointCount(maker.address);
      const t = await inOneBlock(
        (o) => registry.suspend(maker.address, ethers.id("fraud"), o),
        (o) => registry.reinstate(maker.address, o),
      );
      // Suspended at some moment of second t: suspended for all of t, valid again from t+1.
      expect(await registry.rolesAt(maker.address, before)).to.equal(Roles.MANUFACTURER);
      expect(await registry.rolesAt(maker.address, t)).to.equal(0);
      expect(await registry.rolesAt(maker.address, t + 1)).to.equal(Roles.MANUFACTURER);
      expect(await registry.checkpointCount(maker.address)).to.equal(count + 2n);
      // The events say the same, with the reason.
      const replay = await replayed(registry, maker.address);
      expect(replay.at(t).suspended).to.equal(true);
      expect(replay.at(t + 1).suspended).to.equal(false);
      await expectReplayMatches(registry, maker.address, before, t + 3);
    });

    it("a third change in the same second counts against that second too", async function () {
      const { registry, maker } = await loadFixture(deployAll);
      const t = await inOneBlock(
        (o) => registry.grantRoles(maker.address, Roles.EXPORTER, o),
        (o) => registry.grantRoles(maker.address, Roles.CARRIER, o),
        (o) => registry.revokeRoles(maker.address, Roles.MANUFACTURER, o),
      );
      // States during t: M|E, M|E|C, E|C. At t only what was held throughout: E (the
      // third change narrows the checkpoint at t after the second wrote t+1).
      expect(await registry.rolesAt(maker.address, t)).to.equal(Roles.EXPORTER);
      expect(await registry.rolesAt(maker.address, t + 1)).to.equal(Roles.EXPORTER | Roles.CARRIER);
      const replay = await replayed(registry, maker.address);
      expect(replay.at(t).granted).to.equal(BigInt(Roles.EXPORTER));
      await expectReplayMatches(registry, maker.address, t - 2, t + 2);
    });

    it("a key admitted and suspended in the same second never held a role", async function () {
      const { registry, outsider, forever } = await loadFixture(deployAll);
      const t = await inOneBlock(
        (o) => registry.admit(outsider.address, ethers.id("o"), Roles.CARRIER, 0, forever, o),
        (o) => registry.suspend(outsider.address, ethers.id("mistake"), o),
      );
      expect(await registry.rolesAt(outsider.address, t)).to.equal(0);
      expect(await registry.rolesAt(outsider.address, t + 1)).to.equal(0);
      expect((await replayed(registry, outsider.address)).at(t).suspended).to.equal(true);
      await expectReplayMatches(registry, outsider.address, t - 1, t + 2);
    });

    it("a key rotated out in the same second it was reinstated holds no role in that second", async function () {
      const { registry, maker, outsider } = await loadFixture(deployAll);
      await registry.suspend(maker.address, ethers.id("leak"));
      const t = await inOneBlock(
        (o) => registry.reinstate(maker.address, o),
        (o) => registry.rotateKey(maker.address, outsider.address, o),
      );
      expect(await registry.rolesAt(maker.address, t)).to.equal(0);
      expect((await replayed(registry, maker.address)).at(t).retired).to.equal(true);
      expect(await registry.rolesAt(outsider.address, t)).to.equal(Roles.MANUFACTURER);
      await expectReplayMatches(registry, maker.address, t - 2, t + 2);
      await expectReplayMatches(registry, outsider.address, t - 2, t + 2);
    });

    it("one change in the second after a same-second pair applies from its own second", async function () {
      const { registry, maker } = await loadFixture(deployAll);
      const t = await inOneBlock(
        (o) => registry.suspend(maker.address, ethers.id("check"), o),
        (o) => registry.reinstate(maker.address, o),
      );
      // The pair wrote its latest state ahead, at t+1; a single change at t+1 replaces it
      // (it is the first change of second t+1, not a third change of second t).
      await network.provider.send("evm_setNextBlockTimestamp", [t + 1]);
      await registry.grantRoles(maker.address, Roles.EXPORTER);
      expect(await latestTime()).to.equal(t + 1);
      expect(await registry.rolesAt(maker.address, t)).to.equal(0);
      expect(await registry.rolesAt(maker.address, t + 1)).to.equal(Roles.MANUFACTURER | Roles.EXPORTER);
      await expectReplayMatches(registry, maker.address, t - 1, t + 3);
    });

    it("two changes in the second after a same-second pair count against that second only", async function () {
      const { registry, maker } = await loadFixture(deployAll);
      const t = await inOneBlock(
        (o) => registry.suspend(maker.address, ethers.id("check"), o),
        (o) => registry.reinstate(maker.address, o),
      );
      await network.provider.send("evm_setNextBlockTimestamp", [t + 1]);
      const u = await inOneBlock(
        (o) => registry.grantRoles(maker.address, Roles.EXPORTER, o),
        (o) => registry.revokeRoles(maker.address, Roles.MANUFACTURER, o),
      );
      expect(u).to.equal(t + 1);
      expect(await registry.rolesAt(maker.address, t)).to.equal(0);
      expect(await registry.rolesAt(maker.address, t + 1)).to.equal(Roles.EXPORTER);
      expect(await registry.rolesAt(maker.address, t + 2)).to.equal(Roles.EXPORTER);
      await expectReplayMatches(registry, maker.address, t - 1, t + 3);
    });
  });
});
