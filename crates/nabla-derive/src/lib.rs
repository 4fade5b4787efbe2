//! `#[derive(Module)]` for nabla: lists a struct's parameters by visiting its fields.
//!
//! Every field is visited (tensors are parameters, nested modules recurse, numbers and strings are
//! ignored), under the field's name. Attributes on a field:
//! - `#[module(skip)]`: not visited (any type);
//! - `#[module(buffer)]`: a tensor that is state but not trained (running statistics).

use proc_macro::TokenStream;
use quote::quote;
use syn::{Data, DeriveInput, Fields, Index, parse_macro_input};

#[proc_macro_derive(Module, attributes(module))]
pub fn derive_module(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

enum Kind {
    Visit,
    Skip,
    Buffer,
}

fn field_kind(attrs: &[syn::Attribute]) -> syn::Result<Kind> {
    let mut kind = Kind::Visit;
    for attr in attrs.iter().filter(|a| a.path().is_ident("module")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("skip") {
                kind = Kind::Skip;
                Ok(())
            } else if meta.path.is_ident("buffer") {
                kind = Kind::Buffer;
                Ok(())
            } else {
                Err(meta.error("expected `skip` or `buffer`"))
            }
        })?;
    }
    Ok(kind)
}

fn expand(input: &DeriveInput) -> syn::Result<proc_macro2::TokenStream> {
    let name = &input.ident;
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new_spanned(
            name,
            "#[derive(Module)] supports structs only; implement nabla::nn::Module by hand for enums",
        ));
    };
    let mut visit = Vec::new();
    let mut visit_mut = Vec::new();
    let mut training = Vec::new();
    let members: Vec<(proc_macro2::TokenStream, String, &syn::Field)> = match &data.fields {
        Fields::Named(f) => f
            .named
            .iter()
            .map(|f| {
                let id = f.ident.as_ref().expect("named");
                (quote!(#id), id.to_string(), f)
            })
            .collect(),
        Fields::Unnamed(f) => f
            .unnamed
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let idx = Index::from(i);
                (quote!(#idx), i.to_string(), f)
            })
            .collect(),
        Fields::Unit => Vec::new(),
    };
    for (member, label, field) in &members {
        match field_kind(&field.attrs)? {
            Kind::Skip => {}
            Kind::Visit => {
                visit.push(quote! {
                    ::nabla::nn::Module::visit(&self.#member, &::nabla::nn::join(prefix, #label), f);
                });
                visit_mut.push(quote! {
                    ::nabla::nn::Module::visit_mut(&mut self.#member, &::nabla::nn::join(prefix, #label), f);
                });
                training.push(quote! {
                    ::nabla::nn::Module::set_training(&mut self.#member, training);
                });
            }
            Kind::Buffer => {
                visit.push(quote! {
                    f(&::nabla::nn::join(prefix, #label), &self.#member, ::nabla::nn::ParamKind::Buffer);
                });
                visit_mut.push(quote! {
                    f(&::nabla::nn::join(prefix, #label), &mut self.#member, ::nabla::nn::ParamKind::Buffer);
                });
            }
        }
    }
    let mut generics = input.generics.clone();
    for tp in generics.type_params_mut() {
        tp.bounds.push(syn::parse_quote!(::nabla::nn::Module));
    }
    let (impl_g, ty_g, where_c) = generics.split_for_impl();
    Ok(quote! {
        impl #impl_g ::nabla::nn::Module for #name #ty_g #where_c {
            #[allow(unused_variables)]
            fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &::nabla::Tensor, ::nabla::nn::ParamKind)) {
                #(#visit)*
            }
            #[allow(unused_variables)]
            fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut ::nabla::Tensor, ::nabla::nn::ParamKind)) {
                #(#visit_mut)*
            }
            #[allow(unused_variables)]
            fn set_training(&mut self, training: bool) {
                #(#training)*
            }
        }
    })
}
