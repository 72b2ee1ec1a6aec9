//! Same seed, same bits: whichever parameter storage, batch or order.

mod common;

use common::{random_params, run};
use diffctl_runtime::integrate::{PathState, Sampler};
use diffctl_runtime::prelude::*;

const D: usize = 2;
const C: usize = 16;
const H: usize = 2;

fn shape() -> NetworkShape {
    NetworkShape {
        d: D as u32,
        channels: C as u32,
        layers: H as u32 + 2,
        score_term: true,
    }
}

fn sampler<'a>(
    net: NetworkRef<'a>,
    integrator: Integrator,
) -> Sampler<
    'a,
    NetworkControl<'a, diffctl_runtime::target::Builtin<'static>>,
    diffctl_runtime::target::Builtin<'static>,
> {
    let target = TargetSpec::Gmm.build_builtin();
    let prior = Prior::standard(D);
    let control = NetworkControl::new(net, Sde::default(), prior, Some(target)).unwrap();
    Sampler {
        sde: Sde::default(),
        grid: TimeGrid::Cosine,
        steps: 30,
        integrator,
        prior,
        control,
        target: Some(target),
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// What this checks is the fixed-size network's *parameter layout*:
/// `Network::load_flat` (through `tensor_mut`) must put every flat parameter
/// where `NetworkRef::from_flat` reads it. Both are then evaluated by the same
/// code (`Network::as_ref` returns a `NetworkRef`), so this is not a
/// comparison of two implementations of the arithmetic; a swapped or
/// transposed tensor in either layout changes the samples and fails it.
#[test]
fn fixed_size_network_has_the_flat_parameter_layout() {
    let flat = random_params(shape(), 7, 0.2);
    let dynamic = NetworkRef::from_flat(shape(), &flat).unwrap();
    let mut fixed = Network::<D, C, H>::zeroed(true);
    fixed.load_flat(&flat).unwrap();
    for integrator in [
        Integrator::EulerMaruyama,
        Integrator::Exponential,
        Integrator::ProbabilityFlow,
    ] {
        let (xa, ca) = run(&sampler(dynamic, integrator), 3, 300);
        let (xb, cb) = run(&sampler(fixed.as_ref(), integrator), 3, 300);
        assert_eq!(bits(&xa), bits(&xb), "{integrator:?}");
        for (a, b) in ca.iter().zip(&cb) {
            assert_eq!(a.r_disc.to_bits(), b.r_disc.to_bits());
            assert_eq!(a.r.to_bits(), b.r.to_bits());
        }
        // The samples are not trivial: a network that moves them.
        assert!(xa.iter().any(|v| v.abs() > 1.0));
    }
}

#[test]
fn batch_and_single_samples_in_reverse_order_agree() {
    let flat = random_params(shape(), 8, 0.2);
    let net = NetworkRef::from_flat(shape(), &flat).unwrap();
    for integrator in [Integrator::EulerMaruyama, Integrator::Exponential] {
        let s = sampler(net, integrator);
        let n = 1000;
        let mut batch = vec![0.0f32; n * D];
        let mut paths = vec![PathState::default(); n];
        let mut work = vec![0.0f32; s.work_len(n)];
        s.sample(42, 0, &mut batch, &mut paths, &mut work).unwrap();
        let mut one = [PathState::default()];
        for i in (0..n).rev() {
            let mut x = [0.0f32; D];
            s.sample(42, i as u64, &mut x, &mut one, &mut work).unwrap();
            assert_eq!(bits(&x), bits(&batch[i * D..(i + 1) * D]), "sample {i}");
            assert_eq!(one[0].cost.r_disc.to_bits(), paths[i].cost.r_disc.to_bits());
        }
    }
}
