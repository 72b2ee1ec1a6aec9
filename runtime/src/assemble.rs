//! From a parsed weights file to a sampler: the prior and the sampler a
//! [`Header`] describes, and the network a [`Model`] holds, read in place
//! ([`Model::network`]) or into a caller's buffer ([`Model::params_into`],
//! [`Model::load_network`]). The file format itself is [`crate::weights`].

use crate::integrate::{Integrator, Sampler};
use crate::network::{Network, NetworkControl, NetworkRef};
use crate::sde::Sde;
use crate::target::{Builtin, IsotropicGaussian, Prior, Target};
use crate::weights::{DecodeError, Header, Model, SamplerKind};

impl Header {
    /// The prior of `X_0` and of the score term's interpolation: `N(0, nu^2 I)`
    /// for VP models; for PIS the reference's terminal marginal `N(0, sigma^2 T I)`.
    pub fn prior(&self) -> Prior<'static> {
        let d = self.shape.d as usize;
        let nu = match self.sde {
            Sde::Pis { sigma, t_end } => sigma * libm::sqrtf(t_end),
            Sde::Vp { .. } => self.prior_nu,
        };
        Prior::Isotropic(IsotropicGaussian { d, nu })
    }

    /// The sampler this header describes, for the network `net` (whose
    /// parameters were loaded from the file) and a target, which is required
    /// when the network has a score term and gives path costs when present.
    /// `steps` and `integrator` override the header's defaults.
    pub fn sampler_for<'a, T: Target + Copy>(
        &self,
        net: NetworkRef<'a>,
        target: Option<T>,
        steps: Option<usize>,
        integrator: Option<Integrator>,
    ) -> Result<Sampler<'a, NetworkControl<'a, T>, T>, &'static str> {
        if net.shape != self.shape {
            return Err("network shape differs from the header's");
        }
        let prior = self.prior();
        let mut control = NetworkControl::new(net, self.sde, prior, target)?;
        control.relative_to_ou = self.sampler == SamplerKind::Dds;
        control.score_clip = self.score_clip;
        Ok(Sampler {
            sde: self.sde,
            grid: self.grid,
            steps: steps.unwrap_or(self.steps as usize),
            integrator: integrator.unwrap_or(self.integrator),
            prior,
            control,
            target,
        })
    }
}

impl<'a> Model<'a> {
    /// The network, evaluated directly from the file's bytes (wherever they
    /// are: flash, a memory-mapped file): no parameter buffer. Checks once
    /// that every parameter is finite. Gives the bits of the buffered path
    /// ([`Model::params_into`] and [`NetworkRef::from_flat`]).
    pub fn network(&self) -> Result<NetworkRef<'a>, DecodeError> {
        let weights = self.weights();
        if let Some(index) = weights.first_non_finite() {
            return Err(DecodeError::NonFinite { index });
        }
        NetworkRef::from_weights(self.header.shape, weights).map_err(|_| {
            DecodeError::PayloadLength {
                expected: self.header.param_count() * self.header.dtype.size(),
                got: self.payload.len(),
            }
        })
    }

    /// The header's sampler (SDE, grid, steps, integrator) on the file's own
    /// target, reading the network from the file's bytes ([`Model::network`]).
    /// Paths carry their costs. Change `steps` or `integrator` on the result
    /// to override the header's defaults.
    #[allow(clippy::type_complexity)]
    pub fn sampler(
        &self,
    ) -> Result<Sampler<'a, NetworkControl<'a, Builtin<'a>>, Builtin<'a>>, crate::Error> {
        let target = self.target().ok_or(crate::Error::Invalid(
            "the file names no target it can build (a data-defined or code-defined target): \
             use Model::sampler_with",
        ))?;
        self.sampler_with(target)
    }

    /// [`Model::sampler`] with a target of the caller's (a target defined in
    /// code, or a built-in one constructed directly).
    pub fn sampler_with<T: Target + Copy>(
        &self,
        target: T,
    ) -> Result<Sampler<'a, NetworkControl<'a, T>, T>, crate::Error> {
        let net = self.network()?;
        Ok(self.header.sampler_for(net, Some(target), None, None)?)
    }

    /// Writes the parameters, as `f32`, into `out[..param_count]`; returns that count.
    pub fn params_into(&self, out: &mut [f32]) -> Result<usize, DecodeError> {
        let n = self.header.param_count();
        if out.len() < n {
            return Err(DecodeError::BufferTooSmall {
                needed: n,
                got: out.len(),
            });
        }
        for (index, slot) in out[..n].iter_mut().enumerate() {
            let v = self.param(index);
            if !v.is_finite() {
                return Err(DecodeError::NonFinite { index });
            }
            *slot = v;
        }
        Ok(n)
    }

    /// Loads the parameters into a fixed-size network, checking its dimensions.
    pub fn load_network<const D: usize, const C: usize, const H: usize>(
        &self,
        net: &mut Network<D, C, H>,
    ) -> Result<(), DecodeError> {
        let shape = self.header.shape;
        for (what, file, compiled) in [
            ("d", shape.d, D as u32),
            ("channels", shape.channels, C as u32),
            ("layers", shape.layers, H as u32 + 2),
        ] {
            if file != compiled {
                return Err(DecodeError::Dimension {
                    what,
                    file,
                    compiled,
                });
            }
        }
        net.score_term = shape.score_term;
        let mut index = 0;
        for spec in shape.params() {
            for slot in net.tensor_mut(spec.param).iter_mut() {
                let v = self.param(index);
                if !v.is_finite() {
                    return Err(DecodeError::NonFinite { index });
                }
                *slot = v;
                index += 1;
            }
        }
        Ok(())
    }
}
